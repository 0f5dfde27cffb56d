<?php
declare(strict_types=1);

namespace Latchkey\Tests;

use PHPUnit\Framework\TestCase;

/**
 * What every adapter must answer against latchkey (`npm run test:guards` creates the keys): the
 * TypeScript guard's verdicts, problems and headers. post() returns [status, headers by lower-case
 * name, decoded body].
 */
abstract class GuardContract extends TestCase
{
    /**
     * @param array<string, string> $headers
     * @return array{0: int, 1: array<string, string>, 2: array<string, mixed>}
     */
    abstract protected function post(array $headers): array;

    protected function setUp(): void
    {
        if (!getenv('LATCHKEY_URL')) {
            $this->markTestSkipped('LATCHKEY_URL is not set: run `npm run test:guards`');
        }
    }

    protected static function env(string $name): string
    {
        return (string) getenv($name);
    }

    /** @return array{0: array<string, string>, 1: array<string, mixed>} */
    private function problem(array $headers, int $status, string $code, ?string $verdict): array
    {
        [$answer, $received, $problem] = $this->post($headers);
        $this->assertSame($status, $answer);
        $this->assertSame('application/problem+json', $received['content-type'] ?? null);
        $this->assertSame($status, $problem['status']);
        $this->assertSame($code, $problem['code'] ?? null);
        $this->assertSame('https://latchkey.dev/problems/' . str_replace('_', '-', $code), $problem['type']);
        $this->assertSame($verdict, $problem['verdict'] ?? null);
        return [$received, $problem];
    }

    public function testAValidKeyReachesTheHandlerWithItsVerdict(): void
    {
        [$status, , $body] = $this->post(['Authorization' => 'Bearer ' . self::env('LATCHKEY_KEY')]);
        $this->assertSame(200, $status);
        $this->assertSame(
            ['key' => self::env('LATCHKEY_KEY_ID'), 'owner' => self::env('LATCHKEY_OWNER'), 'scopes' => ['models:invoke']],
            $body,
        );
    }

    public function testTheApiKeyHeaderWorksToo(): void
    {
        [$status, , $body] = $this->post(['Api-Key' => self::env('LATCHKEY_KEY')]);
        $this->assertSame(200, $status);
        $this->assertSame(self::env('LATCHKEY_KEY_ID'), $body['key']);
    }

    public function testNoKeyIsA401AuthenticationRequired(): void
    {
        [$headers, $problem] = $this->problem([], 401, 'authentication_required', null);
        $this->assertSame('Authentication required', $problem['title']);
        $this->assertSame('Bearer realm="api", Api-Key realm="api"', $headers['www-authenticate'] ?? null);
    }

    public function testAMalformedKeyIsA401Malformed(): void
    {
        $this->problem(['Authorization' => 'Bearer not-a-key'], 401, 'key_malformed', 'MALFORMED');
    }

    public function testAWrongScopeIsA403(): void
    {
        [$headers, $problem] = $this->problem(['Authorization' => 'Bearer ' . self::env('LATCHKEY_KEY_OTHER_SCOPE')], 403, 'insufficient_scope', 'INSUFFICIENT_SCOPE');
        $this->assertSame(['Insufficient scope', 'scopes'], [$problem['title'], $problem['exceeded']]);
        $this->assertArrayNotHasKey('www-authenticate', $headers);
    }

    public function testARevokedKeyIsA401Revoked(): void
    {
        $this->problem(['Authorization' => 'Bearer ' . self::env('LATCHKEY_KEY_REVOKED')], 401, 'key_revoked', 'REVOKED');
    }

    public function testAKeyOverItsRateLimitIsA429WithRetryAfterAndRateLimitHeaders(): void
    {
        [$headers, $problem] = $this->problem(['Authorization' => 'Bearer ' . self::env('LATCHKEY_KEY_EXHAUSTED')], 429, 'key_rate_limited', 'RATE_LIMITED');
        $this->assertSame('API key rate limited', $problem['title']);
        // One request a day: the next one comes within a day.
        $retryAfter = (int) ($headers['retry-after'] ?? 0);
        $this->assertTrue($retryAfter >= 1 && $retryAfter <= 86_400, "Retry-After $retryAfter");
        $this->assertSame('1', $headers['ratelimit-limit'] ?? null);
        $this->assertSame('0', $headers['ratelimit-remaining'] ?? null);
        $reset = (int) ($headers['ratelimit-reset'] ?? -1);
        $this->assertTrue($reset >= 0 && $reset <= 86_400, "RateLimit-Reset $reset");
        $this->assertSame([['per-day', 0]], array_map(static fn (array $l): array => [$l['name'], $l['remaining']], $problem['ratelimits']));
    }
}
