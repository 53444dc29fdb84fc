// The console's only script besides htmx: upload progress bars. Loaded from the gateway (CSP 'self').
document.addEventListener("htmx:xhr:progress", function (event) {
  var form = event.target.closest ? event.target.closest("form") : null;
  var bar = form ? form.querySelector("progress") : null;
  if (bar && event.detail.lengthComputable && event.detail.total > 0) {
    bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
  }
});
