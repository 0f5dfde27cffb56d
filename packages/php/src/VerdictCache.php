<?php
declare(strict_types=1);

namespace Latchkey;

/**
 * The verify cache: verdicts remembered in memory for a few seconds (off by default), with the
 * TypeScript client's rules. The TTL is at most 10 s, latchkey's revocation bound. Cached: VALID
 * (never past the key's `expires_at`) and the final refusals REVOKED, EXPIRED and MALFORMED. Never
 * cached: every other code, errors, and any verdict of a key with limits (it carries `credits` or
 * `ratelimits`), VALID included: latchkey must count every verification of such a key. Entries are
 * named by the SHA-256 of the key and the checks, so the cache holds no key.
 *
 * In PHP's usual one-process-per-request model the cache lives as long as the Client object: it
 * helps a long-running worker (RoadRunner, Swoole, Octane, a queue worker), not a php-fpm request.
 */
final class VerdictCache
{
    /** latchkey's revocation bound, in seconds: the longest a cached verdict may live. */
    public const MAX_TTL = 10.0;
    private const FINAL = ['VALID', 'REVOKED', 'EXPIRED', 'MALFORMED'];

    /** @var array<string, array{0: array<string, mixed>, 1: float}> */
    private array $entries = [];
    /** @var \Closure(): float */
    private \Closure $now;

    public function __construct(private readonly float $ttl, private readonly int $maxEntries, ?callable $now = null)
    {
        if (is_nan($ttl) || $ttl < 0 || $ttl > self::MAX_TTL) {
            throw new \InvalidArgumentException(
                "verifyCacheTtl must be 0 to 10 seconds (latchkey's revocation bound), not $ttl",
            );
        }
        if ($maxEntries < 1) {
            throw new \InvalidArgumentException("verifyCacheMaxEntries must be a positive integer, not $maxEntries");
        }
        $this->now = $now === null ? static fn (): float => microtime(true) : \Closure::fromCallable($now);
    }

    public function enabled(): bool
    {
        return $this->ttl > 0;
    }

    /**
     * The entry's name: the SHA-256 of the key and the checks asked for (never the key itself).
     *
     * @param array<string, mixed> $checks
     */
    public static function entryFor(string $key, array $checks): string
    {
        $material = json_encode(
            [$key, $checks['scope'] ?? null, $checks['resource'] ?? null, $checks['ip'] ?? null],
            JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR,
        );
        return hash('sha256', $material);
    }

    /** @return array<string, mixed>|null */
    public function get(string $entry): ?array
    {
        if (!isset($this->entries[$entry])) {
            return null;
        }
        [$verdict, $until] = $this->entries[$entry];
        if ($until <= ($this->now)()) {
            unset($this->entries[$entry]);
            return null;
        }
        return $verdict; // arrays are values: the caller gets a copy
    }

    /** @param array<string, mixed> $verdict */
    public function set(string $entry, array $verdict): void
    {
        $code = $verdict['code'] ?? null;
        if (!in_array($code, self::FINAL, true) || array_key_exists('credits', $verdict) || array_key_exists('ratelimits', $verdict)) {
            return;
        }
        $now = ($this->now)();
        $until = $now + $this->ttl;
        if ($code === 'VALID' && ($verdict['expires_at'] ?? null) !== null) {
            $expires = self::epochSeconds($verdict['expires_at']);
            if ($expires === null) {
                return;
            }
            $until = min($until, $expires);
        }
        if (!($until > $now)) {
            return;
        }
        unset($this->entries[$entry]);
        $this->entries[$entry] = [$verdict, $until];
        while (count($this->entries) > $this->maxEntries) {
            unset($this->entries[array_key_first($this->entries)]);
        }
    }

    private static function epochSeconds(mixed $stamp): ?float
    {
        if (!is_string($stamp)) {
            return null;
        }
        $moment = \DateTimeImmutable::createFromFormat('Y-m-d\TH:i:s.uP', $stamp)
            ?: \DateTimeImmutable::createFromFormat('Y-m-d\TH:i:sP', $stamp);
        return $moment === false ? null : (float) $moment->format('U.u');
    }
}
