// The thread page: keyboard sending, one client_id per message, and the composer locked
// while an answer is being written. Everything else arrives as HTML over the websocket.
//
// A sent message stays in the composer until the server shows it back (its element carries
// the client_id): if the socket drops first, it is sent again, with the same client_id, when
// the socket reconnects, and the server stores it once; if the server refuses it, a notice
// says why and the text stays to be edited.
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
  var pending = null; // {clientId, text}: sent, not yet shown back by the server
  var resendAfterConnect = false;

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
    } else if (event.key === "Escape" && editing()) {
      event.preventDefault();
      stopEditing(true);
    }
  });

  // Edit last message: its text goes into the composer, and sending replaces it (and the
  // answer to it) instead of adding a new message. Escape leaves the text as it was.
  function editing() {
    var type = byId("composer-type");
    return type && type.value === "edit";
  }

  function stopEditing(clear) {
    byId("composer-type").value = "message";
    if (clear) {
      var text = byId("composer-text");
      text.value = "";
      grow(text);
    }
    showNotice("");
  }

  document.addEventListener("click", function (event) {
    if (!event.target.closest || !event.target.closest("#edit-last")) return;
    var asked = document.querySelectorAll("#messages .msg--user .msg__body");
    if (!asked.length) return;
    var text = byId("composer-text");
    text.value = asked[asked.length - 1].innerText;
    byId("composer-type").value = "edit";
    showNotice("Editing your last message: sending replaces it and its answer. Escape cancels.");
    grow(text);
    text.focus();
  });

  document.addEventListener("input", function (event) {
    if (event.target.id === "composer-text") grow(event.target);
  });

  // Each message gets its own id, so a resent frame cannot post it twice.
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var params = event.detail.parameters;
    if (params.type !== "message" && params.type !== "edit") return;
    if (!pending || pending.text !== params.text) {
      pending = { clientId: newClientId(), text: params.text };
    }
    params.client_id = pending.clientId;
  });

  document.addEventListener("htmx:wsAfterSend", function (event) {
    var form = event.detail.elt;
    if (form && form.id === "composer") {
      byId("composer-fields").disabled = true; // until the run status says otherwise
      showNotice("");
    }
  });

  // The server showed the message back (stored) or refused it (a notice): either way it is
  // no longer pending. Shown back, the composer is emptied for the next one.
  function settlePending(frame) {
    if (!pending) return;
    var shown = document.querySelector('[data-client-id="' + pending.clientId + '"]');
    if (shown) {
      var text = byId("composer-text");
      if (text.value === pending.text) {
        text.value = "";
        grow(text);
      }
      byId("pending-files").textContent = ""; // sent with it
      syncRequired();
      pending = null;
      if (editing()) stopEditing(false);
    } else if (frame.indexOf('id="notice"') !== -1) {
      pending = null;
    }
  }

  document.addEventListener("htmx:wsOpen", function () {
    connected = true;
    resendAfterConnect = pending !== null;
    showNotice("");
    syncComposer();
  });

  document.addEventListener("htmx:wsClose", function (event) {
    connected = false;
    if (event.detail.event && event.detail.event.code >= 4000) {
      // Closed on purpose (signed out, too many pages): the server's notice says why, and
      // there is no reconnecting.
      syncComposer();
      return;
    }
    showNotice(
      pending
        ? "Connection lost; your message will be sent when it is back…"
        : "Connection lost; reconnecting…"
    );
    syncComposer();
  });

  document.addEventListener("htmx:wsAfterMessage", function (event) {
    var frame = typeof event.detail.message === "string" ? event.detail.message : "";
    syncComposer();
    settlePending(frame);
    if (resendAfterConnect) {
      // The first frame after a reconnect shows the thread as stored: a message sent just
      // before the socket dropped is there, or it is sent again now.
      resendAfterConnect = false;
      var fields = byId("composer-fields");
      if (pending && !fields.disabled) {
        byId("composer-text").value = pending.text;
        byId("composer").requestSubmit();
      }
    }
    scrollToEnd();
  });

  // Files: the 📎 button opens the file picker, files dropped on the conversation are
  // uploaded the same way (the upload form posts on change), and each uploaded file waits
  // as a chip in the composer until the message is sent. With files, text is optional.
  function syncRequired() {
    var chips = byId("pending-files");
    var text = byId("composer-text");
    if (chips && text) text.required = !chips.querySelector(".file-chip");
  }

  function upload(fileList) {
    var input = byId("file-input");
    if (!input || !fileList || !fileList.length) return;
    input.files = fileList;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target : null;
    if (!target) return;
    if (target.closest("#attach-button")) {
      byId("file-input").click();
    } else if (target.closest("[data-remove-chip]")) {
      var chip = byId(target.closest("[data-remove-chip]").dataset.removeChip);
      if (chip) chip.remove();
      syncRequired();
      byId("composer-text").focus();
    }
  });

  document.addEventListener("dragover", function (event) {
    if (!event.target.closest || !event.target.closest(".conversation")) return;
    if (event.dataTransfer && Array.prototype.indexOf.call(event.dataTransfer.types, "Files") !== -1) {
      event.preventDefault();
      document.body.classList.add("dropping");
    }
  });

  document.addEventListener("dragleave", function (event) {
    if (!event.relatedTarget) document.body.classList.remove("dropping");
  });

  document.addEventListener("drop", function (event) {
    document.body.classList.remove("dropping");
    if (!event.target.closest || !event.target.closest(".conversation")) return;
    if (!event.dataTransfer || !event.dataTransfer.files.length) return;
    event.preventDefault();
    upload(event.dataTransfer.files);
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt && event.detail.elt.id === "upload-form") {
      byId("file-input").value = ""; // the same file can be chosen again
      syncRequired();
    }
  });

  document.addEventListener("DOMContentLoaded", scrollToEnd);
})();
