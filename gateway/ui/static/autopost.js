// Submits the page's form at once (SAML POST binding, and the same-site re-post of the ACS).
document.getElementById("autopost").submit();
