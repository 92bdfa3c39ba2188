// mailroom console: the only script. Save was enabled for the values a Validate accepted;
// changing any value disables it at once (the server refuses a Save of other values anyway).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("company-email");
  var save = document.getElementById("save");
  if (!form || !save) return;
  var changed = function (event) {
    if (event.target && event.target.name && event.target.name !== "csrf") save.disabled = true;
  };
  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
});
