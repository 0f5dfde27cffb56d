<?php
declare(strict_types=1);

namespace Latchkey;

/**
 * A client for latchkey's HTTP API, no dependencies. Every call goes through send(), which owns the
 * transport policy in one place, as the TypeScript client does: a timeout per attempt, bounded
 * retries on 503 (honouring Retry-After) and on network failures, RFC 9457 problems turned into
 * LatchkeyError, and read-your-writes: the client keeps the newest Latchkey-Bookmark latchkey answered
 * with and sends it with every management call, so a read after a write sees it even when a D1 replica
 * serves the read (bookmark() reads it, setBookmark() sets it, the `bookmark:` argument starts from
 * one). latchkey decides every verdict: this client only asks.
 */
final class Client
{
    /** The header latchkey's management API carries its D1 bookmark in (read-your-writes across requests). */
    public const BOOKMARK_HEADER = 'Latchkey-Bookmark';

    private const BACKOFF = 0.25;

    private readonly string $base;
    /** @var callable */
    private $transport;
    /** @var callable */
    private $sleep;
    private readonly VerdictCache $verdicts;
    private ?string $bookmark;

    /**
     * @param string|null $token a JWT, or an API key with keys:read / keys:write, for the management calls
     * @param string|null $verifyToken the deployment's VERIFY_TOKEN, when it sets one
     * @param float $verifyCacheTtl seconds verify() may reuse a verdict (0: off; at most 10)
     * @param callable|null $transport see StreamTransport
     * @param string|null $bookmark start from this Latchkey-Bookmark (one a response of latchkey carried,
     *   e.g. kept by another process): this client's reads then see everything that response saw
     */
    public function __construct(
        string $baseUrl,
        private readonly ?string $token = null,
        private readonly ?string $verifyToken = null,
        private readonly float $timeout = 10.0,
        private readonly int $maxAttempts = 3,
        private readonly float $maxRetryDelay = 10.0,
        float $verifyCacheTtl = 0.0,
        int $verifyCacheMaxEntries = 10_000,
        ?callable $transport = null,
        ?callable $sleep = null,
        ?string $bookmark = null,
    ) {
        $this->base = rtrim($baseUrl, '/');
        if (preg_match('#^https?://#', $this->base) !== 1) {
            throw new \InvalidArgumentException("baseUrl must be an http(s) URL, not \"{$this->base}\"");
        }
        $this->transport = $transport ?? new StreamTransport();
        $this->sleep = $sleep ?? static function (float $seconds): void {
            usleep((int) ($seconds * 1_000_000));
        };
        $this->verdicts = new VerdictCache($verifyCacheTtl, $verifyCacheMaxEntries);
        $this->setBookmark($bookmark);
    }

    /**
     * The newest Latchkey-Bookmark this client received (null: none yet), sent with its next management
     * call.
     */
    public function bookmark(): ?string
    {
        return $this->bookmark;
    }

    /**
     * Carries read-your-writes over from elsewhere (another client, another process), or, with null,
     * reads from the nearest replica without it. An empty string is none.
     */
    public function setBookmark(?string $bookmark): void
    {
        $this->bookmark = $bookmark === '' ? null : $bookmark;
    }

    /**
     * Creates a key (`name`, `scopes`, `expires_at`, `ratelimits`, `credits`...); `key` is shown only this once.
     *
     * @param array<string, mixed> $input
     * @return array<string, mixed>
     */
    public function create(array $input, ?string $idempotencyKey = null): array
    {
        $headers = ['Idempotency-Key' => $idempotencyKey ?? self::uuid()];
        return $this->send('POST', '/v1/keys', body: $input, headers: $headers, auth: true);
    }

    /**
     * @param array<string, scalar> $query `limit`, `cursor`, `status`, `include_revoked`...
     * @return array<string, mixed>
     */
    public function list(array $query = []): array
    {
        return $this->send('GET', '/v1/keys', query: $query, auth: true);
    }

    /** @return array<string, mixed> */
    public function get(string $id): array
    {
        return $this->send('GET', self::keyPath($id), auth: true);
    }

    /**
     * PATCH: fields left out are unchanged; null clears a nullable one.
     *
     * @param array<string, mixed> $changes
     * @return array<string, mixed>
     */
    public function update(string $id, array $changes): array
    {
        return $this->send('PATCH', self::keyPath($id), body: (object) $changes, auth: true);
    }

    /**
     * The new key, shown once. Not retried: a retry after a lost answer would rotate again.
     *
     * @return array<string, mixed>
     */
    public function rotate(string $id, ?int $graceSeconds = null): array
    {
        $body = $graceSeconds === null ? new \stdClass() : ['grace_seconds' => $graceSeconds];
        return $this->send('POST', self::keyPath($id) . '/rotate', body: $body, auth: true, attempts: 1);
    }

    /** Revokes a key (idempotent); with $cascade also every key it created, and theirs. */
    public function revoke(string $id, bool $cascade = false): void
    {
        $this->send('DELETE', self::keyPath($id), query: $cascade ? ['cascade' => true] : [], auth: true);
    }

    /** @return array<string, mixed> */
    public function whoami(): array
    {
        return $this->send('GET', '/v1/whoami', auth: true);
    }

    /**
     * latchkey's verdict on a key (check `valid` and `code`); only a failure to get one throws.
     *
     * @param array{scope?: string, resource?: string, ip?: string, cost?: int} $checks
     * @return array<string, mixed>
     */
    public function verify(string $key, array $checks = []): array
    {
        $asked = [];
        foreach (['scope', 'resource', 'ip', 'cost'] as $name) {
            if (isset($checks[$name])) {
                $asked[$name] = $checks[$name];
            }
        }
        $entry = $this->verdicts->enabled() ? VerdictCache::entryFor($key, $asked) : null;
        if ($entry !== null && ($cached = $this->verdicts->get($entry)) !== null) {
            return $cached;
        }
        $headers = $this->verifyToken === null ? [] : ['Authorization' => "Bearer {$this->verifyToken}"];
        $verdict = $this->send('POST', '/v1/verify', body: ['key' => $key] + $asked, headers: $headers, auth: false);
        if ($entry !== null) {
            $this->verdicts->set($entry, $verdict);
        }
        return $verdict;
    }

    /**
     * @param array<string, scalar> $query
     * @param array<string, string> $headers
     */
    private function send(
        string $method,
        string $path,
        array $query = [],
        mixed $body = null,
        array $headers = [],
        bool $auth = false,
        ?int $attempts = null,
    ): mixed {
        $url = $this->base . $path;
        $pairs = [];
        foreach ($query as $name => $value) {
            $pairs[$name] = is_bool($value) ? ($value ? 'true' : 'false') : (string) $value;
        }
        if ($pairs !== []) {
            $url .= '?' . http_build_query($pairs, '', '&', PHP_QUERY_RFC3986);
        }
        $sent = ['Accept' => 'application/json'] + $headers;
        $data = null;
        if ($body !== null) {
            $sent['Content-Type'] = 'application/json';
            $data = json_encode($body, JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
        }
        if ($auth) {
            if ($this->token === null || $this->token === '') {
                throw new LatchkeyError(401, LatchkeyError::syntheticProblem(401, 'Unauthorized', 'This call needs a token'));
            }
            $sent['Authorization'] = "Bearer {$this->token}";
            if ($this->bookmark !== null) {
                $sent[self::BOOKMARK_HEADER] = $this->bookmark;
            }
        }
        $most = max(1, $attempts ?? $this->maxAttempts);
        for ($attempt = 1; ; $attempt++) {
            $outcome = $this->attempt($method, $url, $sent, $data);
            if (!$outcome instanceof LatchkeyError) {
                return $outcome;
            }
            if (!$outcome->isUnavailable()) {
                throw $outcome;
            }
            $delay = $outcome->retryAfter ?? self::BACKOFF * 2 ** ($attempt - 1);
            if ($attempt >= $most || $delay > $this->maxRetryDelay) {
                throw $outcome;
            }
            ($this->sleep)((float) $delay);
        }
    }

    /** @param array<string, string> $headers */
    private function attempt(string $method, string $url, array $headers, ?string $data): mixed
    {
        try {
            $answer = ($this->transport)($method, $url, $headers, $data, $this->timeout);
        } catch (TransportException $error) {
            $title = $error->timedOut ? 'Timeout' : 'Network error';
            return new LatchkeyError(0, LatchkeyError::syntheticProblem(0, $title, $error->getMessage()));
        }
        $this->remember($answer['headers']);
        $status = (int) $answer['status'];
        if ($status >= 200 && $status < 300) {
            return $status === 204 || $answer['body'] === '' ? null : json_decode($answer['body'], true, 512, JSON_THROW_ON_ERROR);
        }
        $problem = null;
        $type = strtolower($answer['headers']['content-type'] ?? '');
        if (str_starts_with($type, 'application/json') || str_starts_with($type, 'application/problem+json')) {
            $parsed = json_decode($answer['body'], true);
            if (is_array($parsed) && !array_is_list($parsed)) {
                $problem = $parsed;
            }
        }
        $problem ??= LatchkeyError::syntheticProblem($status, "HTTP $status");
        return new LatchkeyError($status, $problem, self::retryAfterSeconds($answer['headers']['retry-after'] ?? null));
    }

    /**
     * Keeps the answer's bookmark when it is newer than the one held (bookmarks sort oldest first;
     * strcmp, as `>` would compare two numeric-looking strings as numbers).
     *
     * @param array<string, string> $headers by lower-case name
     */
    private function remember(array $headers): void
    {
        $received = $headers[strtolower(self::BOOKMARK_HEADER)] ?? '';
        if ($received !== '' && ($this->bookmark === null || strcmp($received, $this->bookmark) > 0)) {
            $this->bookmark = $received;
        }
    }

    /** Retry-After as seconds: a delay or an HTTP date; null when absent or unreadable. */
    public static function retryAfterSeconds(?string $value): ?int
    {
        if ($value === null) {
            return null;
        }
        $value = trim($value);
        if (ctype_digit($value)) {
            return (int) $value;
        }
        $moment = strtotime($value);
        return $moment === false ? null : max(0, $moment - time());
    }

    private static function keyPath(string $id): string
    {
        return '/v1/keys/' . rawurlencode($id);
    }

    private static function uuid(): string
    {
        $bytes = random_bytes(16);
        $bytes[6] = chr((ord($bytes[6]) & 0x0f) | 0x40);
        $bytes[8] = chr((ord($bytes[8]) & 0x3f) | 0x80);
        return vsprintf('%s%s-%s-%s-%s-%s%s%s', str_split(bin2hex($bytes), 4));
    }
}
