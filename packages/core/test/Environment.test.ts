import { describe, expect, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as FastCheck from "effect/FastCheck"
import * as Environment from "../src/Environment.js"

const ok = (input: string): string => {
  const result = Environment.resolve(input)
  if (Either.isLeft(result)) throw new Error(`expected ${JSON.stringify(input)} to resolve: ${result.left.message}`)
  return result.right
}

const rejected = (input: string): Environment.InvalidEnvironment => {
  const result = Environment.resolve(input)
  if (Either.isRight(result)) throw new Error(`expected ${JSON.stringify(input)} to be rejected, got ${result.right}`)
  return result.left
}

describe("Environment.resolve", () => {
  it("lists the 17 published regions", () => {
    expect(Environment.knownEnvironments).toHaveLength(17)
    expect(new Set(Environment.knownEnvironments).size).toBe(17)
    for (const env of Environment.knownEnvironments) expect(ok(env)).toBe(env)
  })

  it.each([
    ["mypurecloud.com", "mypurecloud.com"],
    ["https://api.mypurecloud.de", "mypurecloud.de"],
    ["api.mypurecloud.de/", "mypurecloud.de"],
    ["login.usw2.pure.cloud", "usw2.pure.cloud"],
    ["HTTPS://LOGIN.MYPURECLOUD.COM.AU/", "mypurecloud.com.au"],
    ["mypurecloud.ie.", "mypurecloud.ie"],
    ["  apps.mypurecloud.jp  ", "mypurecloud.jp"],
    ["http://api.cac1.pure.cloud//", "cac1.pure.cloud"],
    ["https://login.mypurecloud.com./", "mypurecloud.com"],
    ["use2.us-gov-pure.cloud", "use2.us-gov-pure.cloud"],
    ["api.use2.us-gov-pure.cloud", "use2.us-gov-pure.cloud"],
    // Regions published after this release follow the pure.cloud naming and still resolve.
    ["euw3.pure.cloud", "euw3.pure.cloud"],
    ["https://api.afs1.pure.cloud", "afs1.pure.cloud"],
    ["usw1.us-gov-pure.cloud", "usw1.us-gov-pure.cloud"],
    // Loopback hosts for simulators and tests.
    ["127.0.0.1:8080", "127.0.0.1:8080"],
    ["localhost:1234", "localhost:1234"],
    ["http://localhost:1234/", "localhost:1234"],
    ["LOCALHOST", "localhost"],
    ["[::1]:9000", "[::1]:9000"],
    ["127.0.0.2:80", "127.0.0.2:80"]
  ])("resolves %j to %s", (input, expected) => {
    expect(ok(input)).toBe(expected)
  })

  it.each([
    ["", "it is empty"],
    ["   ", "it is empty"],
    ["example.com", "not a Genesys Cloud region host"],
    ["mypurecloud.con", "mypurecloud.con is not a Genesys Cloud region"],
    ["mypurecloud.co.uk", "the mypurecloud regions are"],
    ["https://api.mypurecloud.com/api/v2", "path"],
    ["mypurecloud.com?x=1", "query"],
    ["ftp://mypurecloud.com", "ftp:// is not supported"],
    ["mypurecloud.com:443", "has no port"],
    ["https://localhost:8443", "plain http"],
    ["localhost:70000", "out of range"],
    ["localhost:0", "out of range"],
    ["10.0.0.1:8080", "has no port"],
    ["pure.cloud", "not a Genesys Cloud region host"],
    ["api.pure.cloud", "not a Genesys Cloud region host"],
    ["usw2.pure.cloud.evil.example", "not a Genesys Cloud region host"],
    ["mypurecloud.com.evil.example", "not a Genesys Cloud region"],
    ["evilpure.cloud", "not a Genesys Cloud region host"],
    ["api.login.mypurecloud.com", "not a Genesys Cloud region"],
    ["my purecloud.com", "not a Genesys Cloud region host"]
  ])("rejects %j (%s)", (input, reason) => {
    const error = rejected(input)
    expect(error._tag).toBe("InvalidEnvironment")
    expect(error.subject).toBe("environment")
    expect(error.reason).toContain(reason)
    expect(error.message).toContain(`"${input}"`)
    expect(error.message).toContain("mypurecloud.com or usw2.pure.cloud")
  })

  it("never echoes credentials written into the input", () => {
    const error = rejected("https://user:hunter2@api.mypurecloud.com")
    expect(error.reason).toContain("credentials")
    expect(error.message).not.toContain("hunter2")
    expect(error.message).toContain("https://<redacted>@api.mypurecloud.com")
    expect(rejected("someone:hunter2@mypurecloud.com").message).not.toContain("hunter2")
  })

  it("bounds the input shown in the message", () => {
    const error = rejected("x".repeat(10_000))
    expect(error.input.length).toBeLessThanOrEqual(120)
  })

  it.prop(
    "any decoration of a known region resolves to the region",
    {
      env: FastCheck.constantFrom(...Environment.knownEnvironments),
      scheme: FastCheck.constantFrom("", "https://", "http://", "HTTPS://"),
      prefix: FastCheck.constantFrom("", "api.", "login.", "apps."),
      dots: FastCheck.integer({ min: 0, max: 2 }),
      slashes: FastCheck.integer({ min: 0, max: 3 }),
      upper: FastCheck.array(FastCheck.boolean(), { minLength: 40, maxLength: 40 }),
      space: FastCheck.constantFrom("", " ", "\t", "\n")
    },
    ({ dots, env, prefix, scheme, slashes, space, upper }) => {
      const host = `${prefix}${env}`.split("").map((c, i) => (upper[i % upper.length] ? c.toUpperCase() : c)).join("")
      const input = `${space}${scheme}${host}${".".repeat(dots)}${"/".repeat(slashes)}${space}`
      expect(ok(input)).toBe(env)
    }
  )

  it.prop("never throws, and a resolved environment resolves to itself", { input: FastCheck.string({ maxLength: 60 }) }, ({ input }) => {
    const result = Environment.resolve(input)
    if (Either.isRight(result)) expect(ok(result.right)).toBe(result.right)
    else expect(result.left).toBeInstanceOf(Environment.InvalidEnvironment)
  })
})

describe("Environment base URLs", () => {
  it("derives login and API hosts for every region", () => {
    for (const env of Environment.knownEnvironments) {
      const resolved = ok(env) as Environment.Environment
      expect(Environment.loginBaseUrl(resolved)).toBe(`https://login.${env}`)
      expect(Environment.apiBaseUrl(resolved)).toBe(`https://api.${env}`)
      expect(Environment.isLoopback(resolved)).toBe(false)
    }
  })

  it("serves loopback environments over http on one host", () => {
    for (const [input, base] of [
      ["127.0.0.1:8080", "http://127.0.0.1:8080"],
      ["localhost", "http://localhost"],
      ["[::1]:9000", "http://[::1]:9000"]
    ] as const) {
      const env = ok(input) as Environment.Environment
      expect(Environment.isLoopback(env)).toBe(true)
      expect(Environment.loginBaseUrl(env)).toBe(base)
      expect(Environment.apiBaseUrl(env)).toBe(base)
    }
  })
})

describe("Environment.resolveLoginUrl", () => {
  it.each([
    ["http://127.0.0.1:1234", "http://127.0.0.1:1234"],
    ["http://127.0.0.1:1234/", "http://127.0.0.1:1234"],
    ["http://localhost:99/sim/", "http://localhost:99/sim"],
    ["https://login.mypurecloud.com/", "https://login.mypurecloud.com"],
    ["https://proxy.example.com/genesys", "https://proxy.example.com/genesys"],
    [" HTTPS://Login.MyPureCloud.de ", "https://login.mypurecloud.de"]
  ])("accepts %j as %s", (input, expected) => {
    expect(Environment.resolveLoginUrl(input)).toEqual(Either.right(expected))
  })

  it.each([
    ["login.mypurecloud.com", "absolute URL"],
    ["http://login.mypurecloud.com", "must use https unless the host is loopback"],
    ["http://10.1.2.3:8080", "must use https unless the host is loopback"],
    ["ftp://127.0.0.1", "not supported"],
    ["https://login.mypurecloud.com/?a=1", "query or fragment"],
    ["https://login.mypurecloud.com/#x", "query or fragment"]
  ])("rejects %j (%s)", (input, reason) => {
    const result = Environment.resolveLoginUrl(input)
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isLeft(result)) {
      expect(result.left.subject).toBe("loginUrl")
      expect(result.left.reason).toContain(reason)
      expect(result.left.message).toContain("is not a usable login URL")
    }
  })

  it("never echoes credentials written into the URL", () => {
    const result = Environment.resolveLoginUrl("https://client:hunter2@login.mypurecloud.com")
    expect(Either.isLeft(result)).toBe(true)
    if (Either.isLeft(result)) {
      expect(result.left.reason).toContain("credentials")
      expect(result.left.message).not.toContain("hunter2")
    }
  })
})
