// panva's oidc-provider as the client_credentials peer of bench/oidc.py: the same client
// (client_secret_basic), ES256-signed JWT access tokens, one process (the benchmark pins it to
// the gateway's core). Usage: node oidc_provider.mjs PORT
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const port = Number(process.argv[2]);
const jwk = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ format: "jwk" });
const resource = "https://api.example.com";

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: "service",
      client_secret: "service-secret-0123456789",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
      id_token_signed_response_alg: "ES256", // the only key is an EC one
      scope: "reports.read",
    },
  ],
  jwks: { keys: [{ ...jwk, kid: "bench", alg: "ES256", use: "sig" }] },
  scopes: ["reports.read"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "reports.read",
        audience: resource,
        accessTokenFormat: "jwt",
        accessTokenTTL: 3600,
        jwt: { sign: { alg: "ES256" } },
      }),
    },
  },
});
provider.listen(port, "127.0.0.1");
