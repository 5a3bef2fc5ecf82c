// Live refresh: the console announces changes of what it watches as Server-Sent Events; the
// page reloads itself shortly after one. Without JavaScript, reload by hand.
(function () {
  "use strict";
  if (!window.EventSource) {
    return;
  }
  var source = new EventSource("/events");
  var pending = null;
  source.addEventListener("change", function () {
    if (pending === null) {
      pending = window.setTimeout(function () {
        window.location.reload();
      }, 500);
    }
  });
})();
