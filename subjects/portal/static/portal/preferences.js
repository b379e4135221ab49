/* The preference centre's save bar, with JavaScript: it counts the switches changed since they were saved and asks
   before the page is left with unsaved changes. Without it the page works the same, the bar just says that
   changes count once saved. Served as a file: the Content-Security-Policy allows no inline script. */
(function () {
  "use strict";
  var form = document.getElementById("preferences-form");
  var status = document.getElementById("savebar-status");
  if (!form || !status) {
    return;
  }
  var switches = Array.prototype.slice.call(form.querySelectorAll("input[data-saved]"));
  var submitting = false;

  function unsaved() {
    return switches.filter(function (input) {
      return !input.disabled && input.checked !== (input.getAttribute("data-saved") === "on");
    }).length;
  }

  function show() {
    var count = unsaved();
    var text = count === 0 ? status.getAttribute("data-none")
      : count === 1 ? status.getAttribute("data-one")
      : status.getAttribute("data-many").replace("#", String(count));
    if (status.textContent !== text) {
      status.textContent = text;
    }
    form.classList.toggle("dirty", count > 0);
  }

  form.addEventListener("change", show);
  form.addEventListener("submit", function () {
    submitting = true;
  });
  window.addEventListener("beforeunload", function (event) {
    if (!submitting && unsaved() > 0) {
      event.preventDefault();
      event.returnValue = "";  // older browsers need it set to show their own question
    }
  });
  window.addEventListener("pageshow", show);  // back to a page from the cache: the switches may have kept changes
  show();
})();
