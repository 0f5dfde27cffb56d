<?php
declare(strict_types=1);

namespace Latchkey\Tests;

use Latchkey\Client;
use Latchkey\VerdictCache;
use PHPUnit\Framework\TestCase;

/** The verify cache: the TypeScript client's rules, with a stub clock and against latchkey. */
final class VerdictCacheTest extends TestCase
{
    private float $now = 1_800_000_000.0; // 2027-01-15T08:00:00Z

    private function cache(float $ttl = 5.0, int $entries = 100): VerdictCache
    {
        return new VerdictCache($ttl, $entries, fn (): float => $this->now);
    }

    private static function valid(array $extra = []): array
    {
        return $extra + ['valid' => true, 'code' => 'VALID', 'key_id' => 'key_1', 'owner' => ['type' => 'user', 'id' => 'alice'], 'scopes' => ['models:invoke'], 'resources' => null, 'expires_at' => null, 'enabled' => true];
    }

    public function testTheTtlIsBoundedByLatchkeysRevocationBound(): void
    {
        foreach ([-1.0, 10.5, NAN] as $bad) {
            try {
                new VerdictCache($bad, 10);
                $this->fail("ttl $bad accepted");
            } catch (\InvalidArgumentException) {
                $this->addToAssertionCount(1);
            }
        }
        $this->assertTrue((new VerdictCache(10, 10))->enabled());
        $this->assertFalse((new VerdictCache(0, 10))->enabled());
        $this->expectException(\InvalidArgumentException::class);
        new VerdictCache(5, 0);
    }

    public function testValidLivesForTheTtlAndNeverPastTheKeysExpiry(): void
    {
        $cache = $this->cache();
        $cache->set('e', self::valid());
        $cache->set('expiring', self::valid(['expires_at' => '2027-01-15T08:00:02.000Z']));
        $cache->set('past', self::valid(['expires_at' => '2027-01-15T08:00:00Z']));
        $cache->set('unreadable', self::valid(['expires_at' => 'soon']));
        $this->assertNull($cache->get('past'));
        $this->assertNull($cache->get('unreadable'));
        $this->now += 1.9;
        $this->assertNotNull($cache->get('expiring'));
        $this->now += 0.1;
        $this->assertNull($cache->get('expiring'));
        $this->now += 2.9;
        $this->assertSame(self::valid(), $cache->get('e'));
        $this->now += 0.1;
        $this->assertNull($cache->get('e'));
    }

    public function testOnlyFinalVerdictsAreCached(): void
    {
        $cache = $this->cache();
        foreach (['REVOKED', 'EXPIRED', 'MALFORMED'] as $code) {
            $cache->set($code, ['valid' => false, 'code' => $code, 'key_id' => null]);
            $this->assertSame($code, $cache->get($code)['code']);
        }
        foreach (['NOT_FOUND', 'DISABLED', 'IP_NOT_ALLOWED'] as $code) {
            $cache->set($code, ['valid' => false, 'code' => $code, 'key_id' => null]);
            $this->assertNull($cache->get($code), $code);
        }
        foreach (['INSUFFICIENT_SCOPE', 'RESOURCE_NOT_ALLOWED', 'RATE_LIMITED', 'USAGE_EXCEEDED'] as $code) {
            $cache->set($code, self::valid(['valid' => false, 'code' => $code]));
            $this->assertNull($cache->get($code), $code);
        }
    }

    public function testAVerdictWithLimitsIsNeverCached(): void
    {
        $cache = $this->cache();
        $cache->set('credits', self::valid(['credits' => ['remaining' => 5]]));
        $cache->set('ratelimits', self::valid(['ratelimits' => [['name' => 'm', 'limit' => 5, 'remaining' => 4, 'reset' => 0]]]));
        $this->assertNull($cache->get('credits'));
        $this->assertNull($cache->get('ratelimits'));
    }

    public function testTheOldestEntryGoesFirst(): void
    {
        $cache = $this->cache(entries: 2);
        foreach (['a', 'b', 'c'] as $name) {
            $cache->set($name, self::valid(['key_id' => $name]));
        }
        $this->assertNull($cache->get('a'));
        $this->assertSame('b', $cache->get('b')['key_id']);
    }

    public function testEntriesAreNamedByADigestNeverByTheKey(): void
    {
        $entry = VerdictCache::entryFor('lk_secret', ['scope' => 's']);
        $this->assertMatchesRegularExpression('/^[0-9a-f]{64}$/', $entry);
        $this->assertNotSame($entry, VerdictCache::entryFor('lk_secret', ['scope' => 't']));
        $this->assertNotSame($entry, VerdictCache::entryFor('lk_secret', ['scope' => 's', 'ip' => '10.0.0.1']));
        // The TypeScript client's digest: SHA-256 of JSON [key, scope, resource, ip].
        $this->assertSame(hash('sha256', '["k",null,null,null]'), VerdictCache::entryFor('k', []));
    }

    public function testASecondVerifyOfAValidUnlimitedKeyWithinTheTtlMakesNoHttpCall(): void
    {
        $this->live();
        $transport = new CountingTransport();
        $client = new Client((string) getenv('LATCHKEY_URL'), verifyCacheTtl: 5, transport: $transport);
        $first = $client->verify((string) getenv('LATCHKEY_KEY'), ['scope' => 'models:invoke']);
        $this->assertSame('VALID', $first['code']);
        $this->assertSame($first, $client->verify((string) getenv('LATCHKEY_KEY'), ['scope' => 'models:invoke']));
        $this->assertCount(1, $transport->calls);
        $client->verify((string) getenv('LATCHKEY_KEY'), ['scope' => 'billing:read']);
        $this->assertCount(2, $transport->calls);
    }

    public function testALimitedKeysVerdictIsNeverCached(): void
    {
        $this->live();
        $transport = new CountingTransport();
        $client = new Client((string) getenv('LATCHKEY_URL'), verifyCacheTtl: 10, transport: $transport);
        $first = $client->verify((string) getenv('LATCHKEY_KEY_LIMITED'), ['scope' => 'models:invoke']);
        $second = $client->verify((string) getenv('LATCHKEY_KEY_LIMITED'), ['scope' => 'models:invoke']);
        $this->assertSame('VALID', $first['code']);
        $this->assertSame($first['ratelimits'][0]['remaining'] - 1, $second['ratelimits'][0]['remaining']);
        $this->assertCount(2, $transport->calls, 'each verification of a limited key reaches latchkey');
    }

    public function testTheCacheIsOffByDefault(): void
    {
        $this->live();
        $transport = new CountingTransport();
        $client = new Client((string) getenv('LATCHKEY_URL'), transport: $transport);
        $client->verify((string) getenv('LATCHKEY_KEY'));
        $client->verify((string) getenv('LATCHKEY_KEY'));
        $this->assertCount(2, $transport->calls);
    }

    private function live(): void
    {
        if (!getenv('LATCHKEY_URL')) {
            $this->markTestSkipped('LATCHKEY_URL is not set: run `npm run test:guards`');
        }
    }
}
