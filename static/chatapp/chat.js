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
  // While an answer is written the keyboard's place is Stop (Enter or Space presses it);
  // afterwards, and after a reconnect, it is the input again. Focus is only moved from the
  // conversation's own controls, never from, say, the search box.
  function syncComposer() {
    var status = byId("run-status");
    var fields = byId("composer-fields");
    if (!status || !fields) return;
    var locked = !connected || status.dataset.running === "true";
    var active = document.activeElement;
    var ours = !active || active === document.body || byId("composer").contains(active) ||
      status.contains(active);
    if (fields.disabled !== locked) {
      fields.disabled = locked;
      if (!locked && ours) byId("composer-text").focus();
    }
    var stop = status.querySelector(".stop-button");
    if (locked && stop && ours && document.activeElement !== stop) stop.focus();
  }

  function showNotice(text) {
    var notice = byId("notice");
    if (notice) notice.textContent = text;
  }

  // The view follows the answer only while the reader is at the bottom; scrolled up, they
  // stay where they are and "Jump to the latest" takes them down.
  function atBottom() {
    var messages = byId("messages");
    return !messages || messages.scrollHeight - messages.scrollTop - messages.clientHeight < 48;
  }

  function scrollToEnd() {
    var messages = byId("messages");
    if (messages) messages.scrollTop = messages.scrollHeight;
    var jump = byId("jump-latest");
    if (jump) jump.hidden = true;
  }

  var following = true;

  document.addEventListener("htmx:wsBeforeMessage", function () {
    following = atBottom();
  });

  document.addEventListener(
    "scroll",
    function (event) {
      if (event.target.id === "messages" && atBottom()) byId("jump-latest").hidden = true;
    },
    true
  );

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("#jump-latest")) {
      scrollToEnd();
      byId("composer-text").focus();
    }
  });

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
      following = true; // your own message: follow its answer
      scrollToEnd();
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
    // A new title or another assistant: the list of chats shows it too.
    if (frame.indexOf('id="thread-title"') !== -1 || frame.indexOf('id="assistant-badge"') !== -1) {
      htmx.trigger(document.body, "chats-changed");
    }
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
    if (following) {
      scrollToEnd();
    } else {
      byId("jump-latest").hidden = false;
    }
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

  // The list of chats: a drawer behind the "Chats" button on narrow screens (Escape closes
  // it), refreshed when this chat gets its title or another assistant (the frames say so).
  function setChatList(open) {
    var list = byId("chat-list");
    var toggle = byId("chat-list-toggle");
    if (!list || !toggle) return;
    list.classList.toggle("chat-list--open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open) byId("chat-search").focus();
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest("#chat-list-toggle")) {
      setChatList(byId("chat-list-toggle").getAttribute("aria-expanded") !== "true");
    }
  });

  document.addEventListener("keydown", function (event) {
    var toggle = byId("chat-list-toggle");
    if (event.key === "Escape" && toggle && toggle.getAttribute("aria-expanded") === "true") {
      setChatList(false);
      toggle.focus();
    }
  });

  // Copy: each answer, and each code block of an answer (its button is added here, so the
  // server's sanitised HTML stays as it is).
  htmx.onLoad(function (root) {
    var blocks = root.querySelectorAll
      ? root.querySelectorAll(".msg--assistant:not(.msg--streaming) .msg__body pre, .consult__answer pre")
      : [];
    Array.prototype.forEach.call(blocks, function (pre) {
      if (pre.parentElement.classList.contains("code-block")) return;
      var wrapper = document.createElement("div");
      wrapper.className = "code-block";
      pre.parentElement.insertBefore(wrapper, pre);
      wrapper.appendChild(pre);
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy-button";
      button.dataset.copy = "code";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy code");
      wrapper.appendChild(button);
    });
  });

  // Times are written in the server's zone; shown in the reader's (the datetime stays
  // exact). A time of day stays a time of day ("19:04"), a date a date ("1 Dec").
  htmx.onLoad(function (root) {
    var times = root.querySelectorAll
      ? root.querySelectorAll("time.msg__time[datetime], .chat-list__meta time[datetime]")
      : [];
    Array.prototype.forEach.call(times, function (time) {
      var when = new Date(time.getAttribute("datetime"));
      var shown = time.lastChild;
      if (isNaN(when.getTime()) || !shown) return;
      shown.textContent =
        shown.textContent.indexOf(":") !== -1
          ? when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
          : when.toLocaleDateString([], { day: "numeric", month: "short" });
      time.title = when.toLocaleString();
    });
  });

  function copied(button, text) {
    var label = button.textContent;
    button.textContent = text;
    setTimeout(function () {
      button.textContent = label;
    }, 1500);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var source =
      button.dataset.copy === "code"
        ? button.parentElement.querySelector("pre")
        : button.closest(".msg").querySelector(".msg__body");
    if (!source || !navigator.clipboard) return;
    navigator.clipboard.writeText(source.innerText).then(
      function () {
        copied(button, "Copied");
      },
      function () {
        copied(button, "Could not copy");
      }
    );
  });

  document.addEventListener("DOMContentLoaded", scrollToEnd);
})();
