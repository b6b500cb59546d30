"""The Cognito User Pools wire API (AWSCognitoIdentityProviderService), so apps built on
Amplify, amazon-cognito-identity-js, boto3 `cognito-idp` or pycognito move to Cognate by
changing their endpoint.

It is a second front end of the login machine (`gateway.login`): its challenges are the
machine's steps as JSON, on the same users, second factors, limits and audit as the hosted
pages. `api` is the transport and the operation table; `auth` signs in (InitiateAuth,
RespondToAuthChallenge); `selfservice` holds sign-up, recovery and the signed-in user's own
operations; `webauthn_ops` the signed-in user's passkeys and the WEB_AUTHN challenge's
building blocks; `tokens` mints Cognito-shaped tokens over ordinary grants; `challenges` keeps
the single-use Sessions; `wire` reads fields and words errors as Cognito does.
"""
