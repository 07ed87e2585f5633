// The chat window with options.useDealsEvents: "+" and a click on a deal tell the parent
// window (the CRM) instead of sending webhooks or opening the deal's link. The data comes
// from the page's JSON block (#chat-events); crmdeals.web.chat explains targetOrigin.
"use strict";

(function () {
  const block = document.getElementById("chat-events");
  if (!block || window.parent === window) {
    return; // not framed: there is nobody to tell
  }
  const data = JSON.parse(block.textContent);
  const ancestors = window.location.ancestorOrigins;
  const targetOrigin = ancestors && ancestors.length ? ancestors[0] : "*";

  function post(type, extra) {
    window.parent.postMessage({ type: type, data: Object.assign({}, data.chat, extra) }, targetOrigin);
  }

  for (const button of document.querySelectorAll(".deal-create")) {
    button.addEventListener("click", function () {
      post("WZ_CREATE_ENTITY", {});
    });
  }
  for (const element of document.querySelectorAll("[data-deal-id]")) {
    const entity = data.deals.find(function (deal) {
      return deal.id === element.dataset.dealId;
    });
    element.addEventListener("click", function (event) {
      event.preventDefault(); // the CRM opens the deal itself
      post("WZ_OPEN_ENTITY", { entity: entity });
    });
  }
})();
