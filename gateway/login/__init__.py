"""The sign-in: one typed state machine that every front end drives.

A pending sign-in is a *flow* (`flows`): the authorization request it serves, bound to one
browser, and what the sign-in has gathered so far (`progress`: the connector's pending state at
an IdP, the proven first factor while a second one is due, the address being verified).

The transitions (`machine`, `upstream`) take a flow and an input — a password, a code, a
passkey, an IdP's answer, a new password — and answer with the next step (`steps`):
`NeedsVerification`, `NeedsNewPassword` (a temporary password), `SecondFactorDue` →
`NeedsSecondFactor` / `NeedsEnrolment` → `Enrolled`, and `Done`; or they raise a
`steps.LoginError`. Sign-up and verification (`registration`) and forgotten passwords
(`recovery`) are the login's too. Rate limits, audit events and identity resolution (`identity`,
with the link-by-verified-e-mail policy) happen in the transitions, once.

The hosted pages (`gateway.ui`) render the steps as HTML and submit their inputs; an API can
render the same steps as JSON challenges. When a step is `Done`, the front end completes it
(`machine.complete`: the flow consumed once, a fresh session) and the flow's owner resumes —
the OP issues a code for its client (`gateway.op.authorize.finish_authorization`), forward-auth
sends the browser back to its page, the device grant approves the device — as panva's
oidc-provider resumes an authorization after an interaction.

    step = await machine.password(services, flow, connector, email, password, ctx)
    if isinstance(step, Done):
        session, cookie = await machine.complete(services, step, ctx, old_cookie, batch)

Nothing here imports a front end: the areas above (`op`, `proxy`, `ui`) import this one.
"""
