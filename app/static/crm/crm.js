/* KeGuan's small enhancements to Flask-AppBuilder forms. No external requests. */
(function ($) {
  "use strict";
  // Province -> city -> district: region codes nest (37 -> 3705 -> 370502), so a child
  // select only offers the options under the chosen parent.
  function cascade(parentId, childId, digits) {
    var parent = $("#" + parentId), child = $("#" + childId);
    if (!parent.length || !child.length) { return; }
    var all = child.find("option").clone();
    function refresh() {
      var prefix = String(parent.val() || "").substring(0, digits);
      var current = child.val();
      child.empty();
      all.each(function () {
        var value = $(this).val();
        if (!value || !prefix || value.substring(0, digits) === prefix) { child.append($(this).clone()); }
      });
      child.val(current && child.find("option[value='" + current + "']").length ? current : "");
      child.trigger("change.select2");
    }
    parent.on("change", refresh);
    refresh();
  }
  // City -> district: the districts of the chosen city come from the region API.
  function loadDistricts() {
    var city = $("#city"), district = $("#district");
    if (!city.length || !district.length) { return; }
    city.on("change", function () {
      var code = city.val();
      var current = district.val();
      district.empty().append($("<option>", { value: "", text: "" }));
      if (!code) { district.trigger("change.select2"); return; }
      var q = "(filters:!((col:parent_code,opr:eq,value:" + code + ")),order_column:code,order_direction:asc,page_size:100)";
      $.getJSON("/api/v1/region/", { q: q }, function (data) {
        $.each(data.result || [], function (_, region) {
          district.append($("<option>", { value: region.code, text: region.name }));
        });
        if (current) { district.val(current); }
        district.trigger("change.select2");
      });
    });
  }
  $(function () {
    cascade("province", "city", 2);
    loadDistricts();
  });
})(jQuery);

/* Remote selects: type to search (the search API), for relations with too many rows to list. */
(function ($) {
  "use strict";
  function remoteSelect(elem) {
    if (elem.hasClass("select2-hidden-accessible")) { return; }
    elem.select2({
      theme: "bootstrap",
      allowClear: true,
      placeholder: "",
      minimumInputLength: 1,
      width: "100%",
      ajax: {
        url: elem.data("url"),
        dataType: "json",
        delay: 250,
        data: function (params) { return { q: params.term, kind: elem.data("kind"), limit: 20 }; },
        processResults: function (data) {
          return { results: $.map(data.result || [], function (hit) {
            return { id: hit.id, text: hit.detail ? hit.name + " · " + hit.detail : hit.name };
          }) };
        }
      }
    });
  }
  $(function () {
    $(".crm-remote-select").each(function () { remoteSelect($(this)); });
    // the filter bar adds its fields when the user picks a filter (Flask-AppBuilder's AdminFilters)
    new MutationObserver(function (changes) {
      changes.forEach(function (change) {
        $(change.addedNodes).find(".crm-remote-select").addBack(".crm-remote-select").each(function () {
          remoteSelect($(this));
        });
      });
    }).observe(document.body, { childList: true, subtree: true });
  });
})(jQuery);

/* Custom-field definitions: show only the options the chosen type uses (the type select lists
   them in data-type-options); options of other types are emptied when the form is sent. */
(function ($) {
  "use strict";
  $(function () {
    var type = $("#field_type");
    var byType = type.data("type-options");
    if (!type.length || !byType) { return; }
    var all = [];
    $.each(byType, function (_, names) { $.each(names, function (_, n) { if (all.indexOf(n) < 0) { all.push(n); } }); });
    function rowOf(name) { return $("#" + name).closest("tr, .form-group"); }
    function refresh() {
      var wanted = byType[type.val()] || [];
      $.each(all, function (_, name) { rowOf(name).toggle(wanted.indexOf(name) >= 0); });
    }
    type.on("change", refresh);
    refresh();
    type.closest("form").on("submit", function () {
      var wanted = byType[type.val()] || [];
      $.each(all, function (_, name) { if (wanted.indexOf(name) < 0) { $("#" + name).val(""); } });
    });
  });
})(jQuery);

/* Lazy tabs of a record page (views.base.PermittedTabsMixin.lazy_tabs): a tab's list is fetched
   when the tab is first shown (or is already open, as ab_keep_tab.js may restore it); its paging
   and sorting links load into the tab too. jQuery's .html() runs the list's inline scripts
   (the delete buttons). */
(function ($) {
  "use strict";
  function load(holder, url) {
    var box = $(holder);
    box.attr("aria-busy", "true");
    $.ajax({ url: url, dataType: "html" })
      .done(function (html) { box.html(html); })
      .fail(function () { box.empty().append($("<p class='text-danger'>").text(box.data("failed"))); })
      .always(function () { box.removeAttr("aria-busy"); });
  }
  $(function () {
    $(".crm-lazy-tab").each(function () {
      var holder = this;
      var pane = $(holder).closest(".tab-pane");
      var own = new URL(holder.getAttribute("data-url"), window.location.href).pathname;
      function open() {
        if (!holder.hasAttribute("data-opened")) {
          holder.setAttribute("data-opened", "");
          load(holder, holder.getAttribute("data-url"));
        }
      }
      $('a[data-toggle="tab"][href="#' + pane.attr("id") + '"]').on("shown.bs.tab", open);
      if (pane.hasClass("active")) { open(); }
      $(holder).on("click", "a[href]", function (event) {
        if (this.pathname === own) {  // a page or a sort order of this same list
          event.preventDefault();
          load(holder, this.href);
        }
      });
    });
  });
})(jQuery);
