// mailroom console: the only script.
// 1. Save was enabled for the values a Validate accepted; changing any value disables it at
//    once (the server refuses a Save of other values anyway).
// 2. The Outbox page marks itself for refreshing while messages are being sent; without this
//    script it has a Refresh link instead.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var refresh = document.getElementById("auto-refresh");
  if (refresh) {
    var seconds = parseInt(refresh.getAttribute("data-seconds"), 10);
    var url = refresh.getAttribute("data-url");
    if (seconds > 0 && url && url.charAt(0) === "/" && url.charAt(1) !== "/") {
      window.setTimeout(function () { window.location.replace(url); }, seconds * 1000);
    }
  }
  var form = document.getElementById("company-email");
  var save = document.getElementById("save");
  if (!form || !save) return;
  var changed = function (event) {
    if (event.target && event.target.name && event.target.name !== "csrf") save.disabled = true;
  };
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
});
