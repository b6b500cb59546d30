"""The Cognito User Pools wire API (AWSCognitoIdentityProviderService): what apps built on
Amplify, amazon-cognito-identity-js, boto3 `cognito-idp` or pycognito call when they sign users
up and in without the hosted pages.

`srp` holds the server side of Cognito's SRP-6a (USER_SRP_AUTH's PASSWORD_VERIFIER), pure
arithmetic with no I/O; `verifiers` keeps each user's SRP salt and verifier sealed at rest.
"""
