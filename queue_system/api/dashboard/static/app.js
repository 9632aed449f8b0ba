// The dashboard's behaviour that is not htmx's: no inline handlers anywhere (the CSP allows
// scripts from /dashboard/static only), so templates mark elements with data attributes instead.
(function () {
  "use strict";
  // <form data-confirm="question">: ask before submitting. Delegated from the document, so forms
  // in fragments htmx swaps in later are covered too.
  document.addEventListener("submit", function (event) {
    var form = event.target.closest ? event.target.closest("form[data-confirm]") : null;
    if (form && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
})();
