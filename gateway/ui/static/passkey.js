// Passkeys: the one thing on the hosted pages that needs JavaScript (WebAuthn is a browser
// API). The server renders the WebAuthn options into data-options; the browser's answer goes
// back in the hidden "credential" field of an ordinary form, so CSRF and everything else work
// as for any other form. Without JavaScript the button stays hidden.
(function () {
  "use strict";
  if (!window.PublicKeyCredential || !PublicKeyCredential.parseCreationOptionsFromJSON) {
    return;
  }
  document.querySelectorAll("[data-passkey]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", async function () {
      var form = button.form;
      var status = form.querySelector("[role=status]");
      var options = JSON.parse(button.dataset.options);
      try {
        var credential = button.dataset.passkey === "create"
          ? await navigator.credentials.create({
              publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
            })
          : await navigator.credentials.get({
              publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
            });
        form.elements.credential.value = JSON.stringify(credential.toJSON());
        form.submit();
      } catch (error) {
        if (status) {
          status.textContent = "The passkey was not used (" + error.name + "). Try again.";
        }
      }
    });
  });
})();
