/* The opportunity kanban (商机看板): columns per stage, cards a page at a time, native HTML5 drag
   and drop to change a stage through /api/v1/kanban/move. No libraries beyond the page's own
   jQuery/Bootstrap (only for the reason dialog); no external requests. Texts come translated
   from the template (config.texts). */
(function () {
  "use strict";

  var configNode = document.getElementById("crm-kanban-config");
  var board = document.getElementById("crm-kanban");
  if (!configNode) { return; }
  var cfg = JSON.parse(configNode.textContent);
  var T = cfg.texts;
  var api = cfg.urls.api;
  var money = new Intl.NumberFormat(cfg.locale, {
    style: "currency", currency: "CNY", minimumFractionDigits: 0, maximumFractionDigits: 0
  });
  var filters = { owner: cfg.owner ? String(cfg.owner) : "", month: cfg.month || "" };
  var columns = {};      // stage id -> {stage, node, cards, more, next, loading}
  var order = [];        // stage ids in board order
  var dragging = null;   // {card, from, before}
  var generation = 0;    // bumped on every reload: late answers of an older board are dropped

  function fmt(text, values) {
    return String(text).replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function query(extra) {
    var params = new URLSearchParams();
    if (filters.owner) { params.set("owner", filters.owner); }
    if (filters.month) { params.set("month", filters.month); }
    Object.keys(extra || {}).forEach(function (key) {
      if (extra[key] !== null && extra[key] !== undefined) { params.set(key, extra[key]); }
    });
    var text = params.toString();
    return text ? "?" + text : "";
  }

  function request(url, options) {
    options = options || {};
    var headers = { "Accept": "application/json" };
    if (options.body) {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = cfg.csrf_token;
    }
    return fetch(url, {
      method: options.body ? "POST" : "GET",
      credentials: "same-origin",
      headers: headers,
      body: options.body ? JSON.stringify(options.body) : undefined
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    });
  }

  /* Field-keyed messages ({stage: ["..."]}) as one line. */
  function messageOf(data) {
    var message = data && data.message;
    if (!message) { return T.failed; }
    if (typeof message === "string") { return message; }
    var parts = [];
    Object.keys(message).forEach(function (key) {
      [].concat(message[key]).forEach(function (text) { parts.push(String(text)); });
    });
    return parts.join(" ") || T.failed;
  }

  function toast(text, kind) {
    var box = document.getElementById("crm-kanban-toasts");
    if (!box) { return; }
    var item = el("div", "alert alert-" + (kind || "info") + " crm-kanban-toast", text);
    item.setAttribute("role", kind === "danger" ? "alert" : "status");
    box.appendChild(item);
    setTimeout(function () { item.classList.add("is-leaving"); }, kind === "danger" ? 5500 : 2500);
    setTimeout(function () { item.remove(); }, kind === "danger" ? 6000 : 3000);
  }

  // --- cards --------------------------------------------------------------------------------------
  function renderCard(data) {
    var card = el("article", "crm-kanban-card");
    card.dataset.id = data.id;
    card.dataset.stage = data.stage;
    if (cfg.can_move) {
      card.draggable = true;
      card.addEventListener("dragstart", onDragStart);
      card.addEventListener("dragend", onDragEnd);
    }
    fillCard(card, data);
    return card;
  }

  function fillCard(card, data) {
    card.textContent = "";
    var name = el("a", "crm-kanban-card-name", data.name);
    name.href = cfg.urls.show + data.id;
    name.draggable = false;  // drag the card, not the link
    name.title = T.open;
    card.appendChild(name);
    if (data.customer) { card.appendChild(el("div", "crm-kanban-card-customer", data.customer)); }
    var amount = el("div", "crm-kanban-card-amount", data.amount === null ? "—" : money.format(Number(data.amount)));
    card.appendChild(amount);
    var meta = el("div", "crm-kanban-card-meta");
    var close = el("span", "crm-kanban-card-close");
    close.appendChild(el("i", "fa fa-calendar-o"));
    close.appendChild(document.createTextNode(" " + (data.expected_close || T.no_close)));
    meta.appendChild(close);
    if (data.owner) {
      var owner = el("span", "crm-kanban-card-owner");
      owner.appendChild(el("i", "fa fa-user-o"));
      owner.appendChild(document.createTextNode(" " + data.owner));
      meta.appendChild(owner);
    }
    var days = el("span", "crm-kanban-card-days");
    days.title = T.days_title;
    days.appendChild(el("i", "fa fa-clock-o"));
    days.appendChild(document.createTextNode(" " + fmt(T.days, { n: data.days_in_stage })));
    if (data.days_in_stage >= 30) { days.classList.add("is-stale"); }
    meta.appendChild(days);
    card.appendChild(meta);
  }

  /* Newest first: a card goes before the first loaded card with a smaller id. */
  function placeCard(column, card) {
    var id = Number(card.dataset.id);
    var cards = column.cards.querySelectorAll(".crm-kanban-card");
    for (var i = 0; i < cards.length; i += 1) {
      if (cards[i] !== card && Number(cards[i].dataset.id) < id) {
        column.cards.insertBefore(card, cards[i]);
        return;
      }
    }
    column.cards.insertBefore(card, column.more);
  }

  function refreshEmpty(column) {
    var hasCards = column.cards.querySelector(".crm-kanban-card") !== null;
    column.node.classList.toggle("is-empty", !hasCards && !column.loading);
  }

  // --- columns ------------------------------------------------------------------------------------
  function renderColumn(stage) {
    var node = el("section", "crm-kanban-column");
    if (stage.is_won) { node.classList.add("is-won"); }
    if (stage.is_lost) { node.classList.add("is-lost"); }
    node.dataset.stage = stage.id;
    node.setAttribute("aria-label", stage.name);
    var head = el("header", "crm-kanban-head");
    var title = el("div", "crm-kanban-title");
    title.appendChild(el("span", "crm-kanban-name", stage.name));
    title.appendChild(el("span", "crm-kanban-probability", stage.probability + "%"));
    head.appendChild(title);
    var figures = el("div", "crm-kanban-figures");
    figures.appendChild(el("span", "crm-kanban-count"));
    figures.appendChild(el("span", "crm-kanban-total"));
    head.appendChild(figures);
    node.appendChild(head);
    var cards = el("div", "crm-kanban-cards");
    cards.appendChild(el("div", "crm-kanban-empty", T.empty));
    var more = el("button", "btn btn-default btn-sm btn-block crm-kanban-more", T.load_more);
    more.type = "button";
    cards.appendChild(more);
    node.appendChild(cards);
    var column = { stage: stage, node: node, cards: cards, more: more, next: null, loading: false };
    more.addEventListener("click", function () { loadPage(column); });
    if (cfg.can_move) {
      node.addEventListener("dragover", function (event) { onDragOver(event, column); });
      node.addEventListener("dragleave", function (event) {
        if (!node.contains(event.relatedTarget)) { node.classList.remove("is-drop-target"); }
      });
      node.addEventListener("drop", function (event) { onDrop(event, column); });
    }
    if ("IntersectionObserver" in window) {  // infinite scroll within the column
      new IntersectionObserver(function (entries) {
        if (entries[0].isIntersecting && column.next !== null && !column.loading) { loadPage(column); }
      }, { root: cards, rootMargin: "120px" }).observe(more);
    }
    updateHead(column, stage);
    return column;
  }

  function updateHead(column, summary) {
    column.stage.count = summary.count;
    column.stage.total = summary.total;
    column.node.querySelector(".crm-kanban-count").textContent = summary.count;
    column.node.querySelector(".crm-kanban-total").textContent = money.format(Number(summary.total));
  }

  function loadPage(column) {
    if (column.loading) { return Promise.resolve(); }
    var mine = generation;
    column.loading = true;
    column.more.disabled = true;
    column.more.textContent = T.loading;
    column.node.classList.add("is-loading");
    var url = api + "/" + cfg.pipeline + "/" + column.stage.id + query({ after: column.next, limit: cfg.page_size });
    return request(url).then(function (answer) {
      if (mine !== generation) { return; }
      if (!answer.ok) {
        toast(messageOf(answer.data), "danger");
        return;
      }
      answer.data.result.forEach(function (data) {
        if (!column.cards.querySelector('.crm-kanban-card[data-id="' + data.id + '"]')) {
          column.cards.insertBefore(renderCard(data), column.more);  // a page is older than what is shown
        }
      });
      column.next = answer.data.next;
    }).catch(function () {
      if (mine === generation) { toast(T.network, "danger"); }
    }).then(function () {
      if (mine !== generation) { return; }
      column.loading = false;
      column.node.classList.remove("is-loading");
      column.more.disabled = false;
      column.more.textContent = T.load_more;
      column.more.hidden = column.next === null;
      refreshEmpty(column);
    });
  }

  function build(summaries) {
    generation += 1;
    board.textContent = "";
    columns = {};
    order = [];
    summaries.forEach(function (stage) {
      var column = renderColumn(stage);
      columns[stage.id] = column;
      order.push(stage.id);
      board.appendChild(column.node);
      column.next = undefined;  // the first page: no `after`
      column.more.hidden = true;
      loadPage(column);
    });
  }

  var reloads = 0;  // only the latest filter change redraws the board
  function reload() {
    window.history.replaceState(null, "", cfg.urls.board + cfg.pipeline + query());
    var mine = reloads += 1;
    return request(api + "/" + cfg.pipeline + query()).then(function (answer) {
      if (mine !== reloads) { return; }
      if (!answer.ok) { toast(messageOf(answer.data), "danger"); return; }
      build(answer.data.result);
    }).catch(function () { toast(T.network, "danger"); });
  }

  // --- drag and drop ------------------------------------------------------------------------------
  function onDragStart(event) {
    var card = event.currentTarget;
    dragging = { card: card, from: columns[card.dataset.stage], before: card.nextSibling };
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.id);
    card.classList.add("is-dragging");
    board.classList.add("is-dragging");
    dragging.from.node.classList.add("is-drag-source");
  }

  function onDragEnd() {
    board.classList.remove("is-dragging");
    Object.keys(columns).forEach(function (id) {
      columns[id].node.classList.remove("is-drop-target", "is-drag-source");
    });
    if (dragging) { dragging.card.classList.remove("is-dragging"); }
    dragging = null;
  }

  function onDragOver(event, column) {
    if (!dragging || dragging.from === column) { return; }
    event.preventDefault();  // allows the drop here
    event.dataTransfer.dropEffect = "move";
    column.node.classList.add("is-drop-target");
  }

  function onDrop(event, column) {
    if (!dragging || dragging.from === column) { return; }
    event.preventDefault();
    var moving = dragging;
    onDragEnd();
    moveCard(moving.card, moving.from, column, moving.before, null);
  }

  /* Show the move at once; on a refusal put the card back where it was and say why. */
  function moveCard(card, from, to, before, reason) {
    placeCard(to, card);
    card.dataset.stage = to.stage.id;
    card.classList.add("is-pending");
    refreshEmpty(from);
    refreshEmpty(to);
    var body = { opportunity: Number(card.dataset.id), stage: to.stage.id };
    if (reason) { body.close_reason = reason; }
    if (filters.owner) { body.owner = Number(filters.owner); }
    if (filters.month) { body.month = filters.month; }

    function putBack(text) {
      if (before && before.parentNode === from.cards) {
        from.cards.insertBefore(card, before);
      } else {
        placeCard(from, card);
      }
      card.dataset.stage = from.stage.id;
      card.classList.remove("is-pending");
      refreshEmpty(from);
      refreshEmpty(to);
      if (text) { toast(text, "danger"); }
    }

    return request(api + "/move", { body: body }).then(function (answer) {
      if (answer.ok) {
        answer.data.result.forEach(function (summary) {
          if (columns[summary.id]) { updateHead(columns[summary.id], summary); }
        });
        if (answer.data.card) { fillCard(card, answer.data.card); }
        card.classList.remove("is-pending");
        toast(fmt(T.moved, { stage: to.stage.name }), "success");
        return;
      }
      var message = answer.data && answer.data.message;
      if (answer.status === 400 && !reason && message && message.close_reason && to.stage.is_lost) {
        askReason(to.stage).then(function (given) {
          if (given) {
            putBack(null);
            moveCard(card, from, to, before, given);
          } else {
            putBack(null);
          }
        });
        return;
      }
      putBack(messageOf(answer.data));
    }).catch(function () { putBack(T.network); });
  }

  /* The lost stage wants a reason: a Bootstrap dialog (window.prompt without Bootstrap). */
  function askReason(stage) {
    var modal = document.getElementById("crm-kanban-reason");
    var $ = window.jQuery;
    var help = fmt(T.reason_help, { stage: stage.name });
    if (!modal || !$ || !$.fn.modal) {
      return Promise.resolve((window.prompt(help) || "").trim());
    }
    return new Promise(function (resolve) {
      var form = document.getElementById("crm-kanban-reason-form");
      var field = form.elements.reason;
      var answer = "";
      modal.querySelector(".crm-kanban-reason-help").textContent = help;
      field.value = "";
      function submitted(event) {
        event.preventDefault();
        answer = field.value.trim();
        if (answer) { $(modal).modal("hide"); }
      }
      form.addEventListener("submit", submitted);
      $(modal).one("shown.bs.modal", function () { field.focus(); });
      $(modal).one("hidden.bs.modal", function () {
        form.removeEventListener("submit", submitted);
        resolve(answer);
      });
      $(modal).modal("show");
    });
  }

  // --- filters and the pipeline switcher ----------------------------------------------------------
  var form = document.getElementById("crm-kanban-filters");
  if (form) {
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    form.elements.pipeline.addEventListener("change", function () {
      window.location.href = cfg.urls.board + form.elements.pipeline.value + query();
    });
    form.elements.owner.addEventListener("change", function () {
      filters.owner = form.elements.owner.value;
      reload();
    });
    form.elements.month.addEventListener("change", function () {
      var value = form.elements.month.value.trim();
      if (value && !/^\d{4}-\d{2}$/.test(value)) { return; }  // a browser without type=month
      filters.month = value;
      reload();
    });
    document.getElementById("crm-kanban-clear").addEventListener("click", function () {
      form.elements.owner.value = "";
      form.elements.month.value = "";
      filters = { owner: "", month: "" };
      reload();
    });
  }

  if (board && cfg.pipeline) { build(cfg.columns); }
})();
