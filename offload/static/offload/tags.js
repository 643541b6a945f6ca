// Tag editing for genres, people and tags: the comma-separated input stays the form's value;
// chips show each entry with a remove button, and Enter or a comma adds what was typed.
(function () {
  "use strict";
  function enhance(input) {
    var box = document.createElement("div");
    box.className = "offload-tag-box";
    var entry = document.createElement("input");
    entry.type = "text";
    entry.className = "offload-tag-entry";
    entry.placeholder = "add…";
    entry.setAttribute("aria-label", "Add an entry to " + (input.name || "the list"));
    input.type = "hidden";
    input.parentNode.insertBefore(box, input);

    function values() {
      return input.value.split(",").map(function (v) { return v.trim(); }).filter(function (v) { return v; });
    }
    function render() {
      Array.prototype.slice.call(box.querySelectorAll(".offload-tag")).forEach(function (chip) { box.removeChild(chip); });
      values().forEach(function (value, index) {
        var chip = document.createElement("span");
        chip.className = "offload-tag";
        chip.textContent = value;
        var remove = document.createElement("button");
        remove.type = "button";
        remove.textContent = "\u00d7";
        remove.setAttribute("aria-label", "Remove " + value);
        remove.addEventListener("click", function () {
          var kept = values();
          kept.splice(index, 1);
          input.value = kept.join(", ");
          render();
        });
        chip.appendChild(remove);
        box.insertBefore(chip, entry);
      });
    }
    function add() {
      var text = entry.value.replace(/,/g, " ").trim();
      if (text && values().indexOf(text) === -1) { input.value = values().concat([text]).join(", "); }
      entry.value = "";
      render();
    }
    entry.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === ",") { event.preventDefault(); add(); }
      if (event.key === "Backspace" && !entry.value) {
        var kept = values();
        kept.pop();
        input.value = kept.join(", ");
        render();
      }
    });
    entry.addEventListener("blur", add);
    box.appendChild(entry);
    render();
  }
  function start() { Array.prototype.forEach.call(document.querySelectorAll("input[data-offload-tags]"), enhance); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
