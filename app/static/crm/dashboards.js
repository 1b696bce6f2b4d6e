/* The dashboards (分析): draws each chart's plotly figure in its card, from the chart's JSON
   (data/<chart>.json: {figure, links, table, empty}), one chart after the other so the page shows
   at once; a click on a bar or point opens its list (links[trace][point]). The printable page
   draws the figures embedded in it as static plots. plotly.js comes from the app itself (no CDN);
   nothing here is inline, so the Content-Security-Policy needs no 'unsafe-inline' for us and no
   'unsafe-eval' for plotly's basic SVG charts. Texts come translated from the template. */
(function () {
  "use strict";

  /* Month and day names for plotly's date axes in Chinese (plotly.min.js ships only English). */
  var ZH_CN = {
    moduleType: "locale",
    name: "zh-CN",
    dictionary: {},
    format: {
      days: ["星期日", "星期一", "星期二", "星期三", "星期四", "星期五", "星期六"],
      shortDays: ["周日", "周一", "周二", "周三", "周四", "周五", "周六"],
      months: ["一月", "二月", "三月", "四月", "五月", "六月", "七月", "八月", "九月", "十月", "十一月", "十二月"],
      shortMonths: ["1月", "2月", "3月", "4月", "5月", "6月", "7月", "8月", "9月", "10月", "11月", "12月"],
      date: "%Y-%m-%d",
      year: "%Y年",
      month: "%Y年%b",
      dayMonth: "%b%-d日",
      dayMonthYear: "%Y年%b%-d日"
    }
  };

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function plotConfig(locale, staticPlot) {
    return {
      responsive: true,
      displaylogo: false,
      staticPlot: !!staticPlot,
      locale: locale === "zh-CN" ? "zh-CN" : "en",
      modeBarButtonsToRemove: ["select2d", "lasso2d", "sendDataToCloud"]
    };
  }

  function setup() {
    if (window.Plotly && window.Plotly.register) {
      window.Plotly.register(ZH_CN);
    }
  }

  function formatCell(value, numbers) {
    if (value === null || value === undefined) { return ""; }
    if (typeof value === "number") { return numbers.format(value); }
    return String(value);
  }

  function drawTable(target, table, numbers) {
    var wrap = el("div", "table-responsive crm-chart-table");
    var node = el("table", "table table-condensed table-striped");
    var head = el("tr");
    var first = table.rows[0] || [];
    table.columns.forEach(function (name, column) {
      head.appendChild(el("th", typeof first[column] === "number" ? "text-right" : null, name));
    });
    node.appendChild(el("thead")).appendChild(head);
    var body = node.appendChild(el("tbody"));
    table.rows.forEach(function (row, index) {
      var tr = el("tr");
      row.forEach(function (value, column) {
        var td = el("td", typeof value === "number" ? "text-right" : null);
        var link = table.links && table.links[index];
        if (column === 0 && link) {
          var a = el("a", null, formatCell(value, numbers));
          a.href = link;
          td.appendChild(a);
        } else {
          td.textContent = formatCell(value, numbers);
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    wrap.appendChild(node);
    target.appendChild(wrap);
  }

  function drawFigure(target, data, cfg) {
    var figure = data.figure;
    var node = el("div", "crm-plot");
    target.appendChild(node);
    return window.Plotly.newPlot(node, figure.data || [], figure.layout || {}, plotConfig(cfg.locale)).then(function () {
      if (!data.links) { return; }
      node.classList.add("crm-plot-linked");
      node.setAttribute("title", cfg.texts.open);
      node.on("plotly_click", function (event) {
        var point = event && event.points && event.points[0];
        if (!point) { return; }
        var trace = data.links[point.curveNumber] || [];
        var index = point.pointNumber;
        if (Array.isArray(index)) { index = index[0]; }
        if (index === undefined && point.pointNumbers) { index = point.pointNumbers[0]; }
        var link = trace[index];
        if (link && link.charAt(0) === "/" && link.charAt(1) !== "/") {
          window.location.assign(link);
        }
      });
    });
  }

  function loadChart(chart, cfg, numbers) {
    var target = document.querySelector('[data-chart-figure="' + chart.key + '"]');
    if (!target) { return Promise.resolve(); }
    return fetch(chart.url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (answer) {
        target.textContent = "";
        var data = answer.data || {};
        if (!answer.ok) {
          var message = data.message;
          if (message && typeof message === "object") {
            message = Object.keys(message).map(function (key) { return [].concat(message[key]).join(" "); }).join(" ");
          }
          target.appendChild(el("p", "text-danger", message || cfg.texts.failed));
          return null;
        }
        if (data.empty) {
          target.appendChild(el("p", "text-muted crm-chart-empty", cfg.texts.empty));
          return null;
        }
        if (data.table) {
          drawTable(target, data.table, numbers);
          return null;
        }
        return drawFigure(target, data, cfg);
      })
      .catch(function () {
        target.textContent = "";
        target.appendChild(el("p", "text-danger", cfg.texts.failed));
      });
  }

  function dashboardPage(configNode) {
    var cfg = JSON.parse(configNode.textContent);
    var numbers = new Intl.NumberFormat(cfg.locale, { maximumFractionDigits: 2 });
    var form = document.getElementById("crm-dashboard-filters");
    if (form) {
      var range = document.getElementById("crm-range");
      Array.prototype.forEach.call(form.querySelectorAll("[data-range]"), function (button) {
        button.addEventListener("click", function () {
          range.value = button.getAttribute("data-range");
          form.elements.from.value = "";
          form.elements.to.value = "";
          form.submit();
        });
      });
      ["from", "to"].forEach(function (name) {
        form.elements[name].addEventListener("change", function () { range.value = ""; });
      });
      /* no empty parameters in the address: it stays short and is what a subscription saves */
      form.addEventListener("submit", function () {
        Array.prototype.forEach.call(form.elements, function (field) {
          if (field.name && field.value === "") { field.disabled = true; }
        });
      });
    }
    setup();
    /* one chart after the other: the first is drawn while the server computes the next */
    cfg.charts.reduce(function (previous, chart) {
      return previous.then(function () { return loadChart(chart, cfg, numbers); });
    }, Promise.resolve()).then(function () {
      document.body.setAttribute("data-charts-loaded", "true");
    });
  }

  function printPage(configNode) {
    var cfg = JSON.parse(configNode.textContent);
    setup();
    var button = document.getElementById("crm-print-button");
    if (button) { button.addEventListener("click", function () { window.print(); }); }
    var drawn = Array.prototype.map.call(document.querySelectorAll("[data-figure]"), function (node) {
      var source = document.getElementById("figure-" + node.getAttribute("data-figure"));
      var figure = JSON.parse(source.textContent);
      return window.Plotly.newPlot(node, figure.data || [], figure.layout || {}, plotConfig(cfg.locale, true));
    });
    Promise.all(drawn).then(function () { document.body.setAttribute("data-charts-loaded", "true"); });
  }

  var dashboard = document.getElementById("crm-dashboard-config");
  if (dashboard) { dashboardPage(dashboard); }
  var printable = document.getElementById("crm-print-config");
  if (printable) { printPage(printable); }
}());
