// Card collection with Stripe.js Elements: a SetupIntent confirms the card, and its payment method
// id goes into the subscribe form, which then posts as usual. No inline script: CSP is on.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const holder = document.getElementById("card-form");
  const form = document.getElementById("subscribe-form");
  if (!holder || !form || typeof Stripe === "undefined") {
    return;
  }
  const stripe = Stripe(holder.dataset.publishableKey);
  const card = stripe.elements().create("card");
  card.mount("#card-element");
  let cardTouched = false;
  card.on("change", () => { cardTouched = true; });
  const errors = document.getElementById("card-errors");
  const method = form.querySelector("input[name=payment_method]");
  const button = document.getElementById("subscribe-button");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  form.addEventListener("submit", async (event) => {
    const needsCard = form.dataset.needsCard === "true" || cardTouched;
    if (!needsCard || method.value) {
      return;  // the card on file is used, or the card was already confirmed
    }
    event.preventDefault();
    button.disabled = true;
    errors.textContent = "";
    try {
      const response = await fetch(holder.dataset.setupUrl, {
        method: "POST", headers: {"X-CSRFToken": csrf}, credentials: "same-origin",
      });
      const body = await response.json();
      if (!response.ok) {
        throw new Error(body.error || "Could not start card setup.");
      }
      const result = await stripe.confirmCardSetup(body.client_secret, {payment_method: {card: card}});
      if (result.error) {
        throw new Error(result.error.message || "The card was not accepted.");
      }
      method.value = result.setupIntent.payment_method;
      form.submit();
    } catch (err) {
      errors.textContent = err.message;
      button.disabled = false;
    }
  });
});
