<?php
declare(strict_types=1);

namespace Latchkey;

/**
 * The guard every adapter shares: read the key, ask latchkey, and let the request in or refuse it,
 * with the TypeScript guard's answers (RFC 9457 problems):
 *
 * - 401 (with WWW-Authenticate) when no key was sent, or it is malformed, unknown, revoked,
 *   disabled or expired, or its IP allow-list does not hold the client's address;
 * - 403 when the key is good but lacks the scope or the resource;
 * - 429 when the key is over a rate limit (RATE_LIMITED) or its credits do not cover the cost
 *   (USAGE_EXCEEDED), with Retry-After when waiting helps and RateLimit-Limit, -Remaining and -Reset
 *   of its tightest rate limit;
 * - 400 when latchkey does not accept the resource id or the cost the request names;
 * - 503 (with Retry-After) when latchkey cannot give a verdict right now, or limits this server.
 *
 * The problem's `code` is the one latchkey's own routes answer for the verdict (`key_revoked` for
 * REVOKED: REFUSALS), with its `type` URI and title, and the verdict itself is in `verdict`; a request
 * without a key gets `authentication_required`. Only a VALID verdict ever reaches a handler.
 */
final class Guard
{
    /** The base of every problem `type` URI: `key_revoked` -> `https://latchkey.dev/problems/key-revoked`. */
    public const PROBLEM_TYPE_BASE = 'https://latchkey.dev/problems/';

    /** The titles of the guard's own problems (no verdict behind them: the request or latchkey failed). */
    public const TITLES = [
        400 => 'Bad Request',
        503 => 'Service Unavailable',
    ];

    /**
     * Each refusing verdict's status, latchkey's problem code and title for it, and what it tells the
     * key's holder: 401 when the key is no good, 403 when it is not enough, 429 when it is spent.
     */
    public const REFUSALS = [
        'MALFORMED' => [401, 'key_malformed', 'Malformed API key', 'The API key is malformed'],
        'NOT_FOUND' => [401, 'key_not_found', 'Unknown API key', 'The API key is not valid'],
        'REVOKED' => [401, 'key_revoked', 'API key revoked', 'The API key has been revoked'],
        'EXPIRED' => [401, 'key_expired', 'API key expired', 'The API key has expired'],
        'DISABLED' => [401, 'key_disabled', 'API key disabled', 'The API key is disabled'],
        'IP_NOT_ALLOWED' => [401, 'key_ip_not_allowed', 'Address not allowed', 'The API key may not be used from this address'],
        'INSUFFICIENT_SCOPE' => [403, 'insufficient_scope', 'Insufficient scope', 'The API key lacks the scope this route needs'],
        'RESOURCE_NOT_ALLOWED' => [403, 'forbidden', 'Forbidden', 'The API key may not use this resource'],
        'RATE_LIMITED' => [429, 'key_rate_limited', 'API key rate limited', 'The API key is over its rate limit'],
        'USAGE_EXCEEDED' => [429, 'key_usage_exceeded', 'API key out of credits', "The API key's credits do not cover this request"],
    ];

    /** The problem for a request that sent no key at all. */
    public const NO_KEY = [401, 'authentication_required', 'Authentication required', 'Send an API key as `Authorization: Bearer <key>` or `Api-Key: <key>`'];

    /** What a 403 exceeded, as latchkey's own 403s name it. */
    public const EXCEEDED = [
        'INSUFFICIENT_SCOPE' => 'scopes',
        'RESOURCE_NOT_ALLOWED' => 'resources',
    ];

    public const UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

    private readonly string $realm;

    /**
     * @param object $verifier a Client, or anything with its verify(string $key, array $checks): array
     * @param mixed $resource a resource id, or a closure (GuardRequest): ?string
     * @param mixed $cost credits the request spends, or a closure (GuardRequest): ?int
     * @param (callable(GuardRequest): ?string)|null $ip the client's address, checked against a key's
     *        allow-list; by default none is sent (a key with an allow-list then fails): headers a
     *        client could forge are no address, so pass your proxy's trusted one
     */
    public function __construct(
        public readonly object $verifier,
        public readonly ?string $scope = null,
        public readonly mixed $resource = null,
        public readonly mixed $cost = null,
        private readonly mixed $ip = null,
        string $realm = 'api',
    ) {
        if (!method_exists($verifier, 'verify')) {
            throw new \InvalidArgumentException('Guard needs a verifier with verify($key, $checks), e.g. a Latchkey\Client');
        }
        $this->realm = str_replace(['"', '\\'], '', $realm);
    }

    /** A guard like this one for another scope (null: this one's). */
    public function withScope(?string $scope): self
    {
        return $scope === null || $scope === $this->scope
            ? $this
            : new self($this->verifier, $scope, $this->resource, $this->cost, $this->ip, $this->realm);
    }

    /** @return array<string, mixed>|Refusal the VALID verdict to hand the handler, or the refusal to answer with */
    public function decide(GuardRequest $request): array|Refusal
    {
        $key = self::presentedKey($request->header(...));
        if ($key === null) {
            [$status, $code, $title, $detail] = self::NO_KEY;
            return self::refusal($status, $detail, $this->realm, [$code, $title]);
        }
        $checks = [];
        if ($this->scope !== null) {
            $checks['scope'] = $this->scope;
        }
        $resource = self::computed($this->resource, $request);
        if ($resource !== null) {
            $checks['resource'] = $resource;
        }
        $cost = self::computed($this->cost, $request);
        if ($cost !== null) {
            $checks['cost'] = $cost;
        }
        $ip = $this->ip === null ? null : ($this->ip)($request);
        if ($ip !== null) {
            $checks['ip'] = $ip;
        }
        try {
            $verdict = $this->verifier->verify($key, $checks);
        } catch (LatchkeyError $error) {
            return self::failedVerification($error);
        }
        // Only a live key's VALID verdict lets the request in: `valid` alone is not trusted.
        if (($verdict['valid'] ?? null) === true && ($verdict['code'] ?? null) === 'VALID') {
            return $verdict;
        }
        $code = $verdict['code'] ?? null;
        $known = is_string($code) && array_key_exists($code, self::REFUSALS) ? $code : 'NOT_FOUND';
        [$status, $problemCode, $title, $detail] = self::REFUSALS[$known];
        $refused = self::refusal($status, $detail, $this->realm, [$problemCode, $title]);
        if ($code !== null) {
            $refused->problem['verdict'] = $code;
        }
        if (array_key_exists($known, self::EXCEEDED)) {
            $refused->problem['exceeded'] = self::EXCEEDED[$known];
        }
        if ($status === 429 && array_key_exists('owner', $verdict)) {
            $refused->headers += self::usageHeaders($verdict);
            // As latchkey's own 429 does: the key's credits and rate limits after the refused request.
            if (array_key_exists('credits', $verdict)) {
                $refused->problem['credits'] = $verdict['credits'];
            }
            if (array_key_exists('ratelimits', $verdict)) {
                $refused->problem['ratelimits'] = $verdict['ratelimits'];
            }
        }
        return $refused;
    }

    /**
     * For a plain PHP script: the VALID verdict of the request being served, or, when it is refused,
     * the problem sent and the script ended.
     *
     * @return array<string, mixed>
     */
    public function protect(): array
    {
        $outcome = $this->decide(GuardRequest::fromGlobals());
        if ($outcome instanceof Refusal) {
            $outcome->send();
            exit;
        }
        return $outcome;
    }

    /** The key from `Authorization: Bearer <key>`, `Authorization: Api-Key <key>` or an `Api-Key` header. */
    public static function presentedKey(callable $header): ?string
    {
        $authorization = $header('authorization');
        if ($authorization !== null) {
            return preg_match('/^(?:Bearer|Api-Key) +(\S+) *$/i', $authorization, $match) === 1 ? $match[1] : null;
        }
        $value = trim((string) $header('api-key'));
        return $value === '' ? null : $value;
    }

    /**
     * RateLimit-Limit, -Remaining and -Reset (seconds) of the tightest rate limit, and for a
     * RATE_LIMITED verdict Retry-After: the seconds until every exhausted limit has a request again
     * (bounded from above: a limit refills `limit` requests by `reset`).
     *
     * @param array<string, mixed> $verdict
     * @return array<string, string>
     */
    public static function usageHeaders(array $verdict, ?float $now = null): array
    {
        $nowMs = ($now ?? microtime(true)) * 1000;
        $headers = [];
        $limits = $verdict['ratelimits'] ?? [];
        $untilMs = static fn (array $limit): float => max(0.0, $limit['reset'] - $nowMs);
        if (($verdict['code'] ?? null) === 'RATE_LIMITED') {
            $waits = [];
            foreach ($limits as $limit) {
                if ($limit['remaining'] < 1) {
                    $waits[] = $untilMs($limit) / $limit['limit'];
                }
            }
            if ($waits !== []) {
                $headers['Retry-After'] = (string) max(1, (int) ceil(max($waits) / 1000));
            }
        }
        $tightest = null;
        foreach ($limits as $limit) {
            if ($tightest === null || $limit['remaining'] < $tightest['remaining']) {
                $tightest = $limit;
            }
        }
        if ($tightest !== null) {
            $headers['RateLimit-Limit'] = (string) $tightest['limit'];
            $headers['RateLimit-Remaining'] = (string) $tightest['remaining'];
            $headers['RateLimit-Reset'] = (string) (int) ceil($untilMs($tightest) / 1000);
        }
        return $headers;
    }

    /** The `type` URI of a problem code, as latchkey's own problems carry it. */
    public static function problemType(string $code): string
    {
        return self::PROBLEM_TYPE_BASE . str_replace('_', '-', $code);
    }

    /**
     * A refusal: latchkey's problem $kind ([code, title]) when there is one, else a plain one
     * (about:blank, the status's title).
     *
     * @param array{0: string, 1: string}|null $kind
     */
    public static function refusal(
        int $status,
        string $detail,
        string $realm,
        ?array $kind = null,
        int $retryAfter = self::UNAVAILABLE_RETRY_AFTER_SECONDS,
    ): Refusal {
        $problem = $kind === null
            ? ['type' => 'about:blank', 'title' => self::TITLES[$status] ?? 'Error', 'status' => $status, 'detail' => $detail]
            : ['type' => self::problemType($kind[0]), 'title' => $kind[1], 'status' => $status, 'detail' => $detail, 'code' => $kind[0]];
        $headers = [];
        if ($status === 401) {
            $headers['WWW-Authenticate'] = "Bearer realm=\"$realm\", Api-Key realm=\"$realm\"";
        }
        if ($status === 503) {
            $headers['Retry-After'] = (string) $retryAfter;
        }
        return new Refusal($status, $problem, $headers);
    }

    /** A fixed option, or a closure (or invokable object) of the request; never a function name: a resource id "date" stays an id. */
    private static function computed(mixed $option, GuardRequest $request): mixed
    {
        return is_object($option) && is_callable($option) ? $option($request) : $option;
    }

    /**
     * latchkey refused the request's resource id or cost (400), limits this server's verifications
     * (429: a 503 with latchkey's Retry-After), or could not answer (503). Anything else is thrown.
     */
    private static function failedVerification(LatchkeyError $error): Refusal
    {
        if ($error->status === 400 || $error->status === 422) {
            return self::refusal(400, 'The request names a resource id or a cost latchkey does not accept', '');
        }
        if ($error->status === 429) {
            return self::refusal(503, 'Key verification is limited right now; retry shortly', '', null, $error->retryAfter ?? self::UNAVAILABLE_RETRY_AFTER_SECONDS);
        }
        if ($error->isUnavailable()) {
            return self::refusal(503, 'Key verification is unavailable; retry shortly', '');
        }
        throw $error;
    }
}
