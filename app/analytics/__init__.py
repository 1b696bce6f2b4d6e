"""Analytics (issue 9): the dashboards' data, aggregated in SQL within the data scope."""
