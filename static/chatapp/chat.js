// The thread page: keyboard sending, one client_id per message, and the composer locked
// while an answer is being written. Everything else arrives as HTML over the websocket.
(function () {
  "use strict";

  function byId(id) {
    return document.getElementById(id);
  }

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  var connected = false;

  // The input is usable while the socket is open and the run status (a fragment the server
  // sends) says no answer is being written.
  function syncComposer() {
    var status = byId("run-status");
    var fields = byId("composer-fields");
    if (!status || !fields) return;
    var locked = !connected || status.dataset.running === "true";
    if (fields.disabled !== locked) {
      fields.disabled = locked;
      if (!locked) byId("composer-text").focus();
    }
  }

  function showNotice(text) {
    var notice = byId("notice");
    if (notice) notice.textContent = text;
  }

  function scrollToEnd() {
    var messages = byId("messages");
    if (messages) messages.scrollTop = messages.scrollHeight;
  }

  function grow(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight, 240) + "px";
  }

  document.addEventListener("keydown", function (event) {
    if (event.target.id !== "composer-text") return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      byId("composer").requestSubmit();
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target.id === "composer-text") grow(event.target);
  });

  // Each message gets its own id, so a resent frame cannot post it twice.
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var params = event.detail.parameters;
    if (params.type === "message") params.client_id = newClientId();
  });

  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.detail.elt;
    if (form && form.id === "composer") {
      var text = byId("composer-text");
      text.value = "";
      grow(text);
      byId("composer-fields").disabled = true; // until the run status says otherwise
      showNotice("");
    }
  });

  document.addEventListener("htmx:wsOpen", function () {
    connected = true;
    showNotice("");
    syncComposer();
  });

  document.addEventListener("htmx:wsClose", function () {
    connected = false;
    showNotice("Connection lost; reconnecting…");
    syncComposer();
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    syncComposer();
    scrollToEnd();
  });

  document.addEventListener("DOMContentLoaded", scrollToEnd);
})();
