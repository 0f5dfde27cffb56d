<?php
declare(strict_types=1);

namespace Latchkey\Tests;

use Latchkey\Client;
use Latchkey\LatchkeyError;
use Latchkey\TransportException;
use PHPUnit\Framework\TestCase;

/**
 * The client's transport policy and read-your-writes (the Latchkey-Bookmark it keeps and sends back),
 * with a stub transport; its management calls against latchkey.
 */
final class ClientTest extends TestCase
{
    private const OLDER = '00000001-00000003-00000000-00000000000000000000000000000000';
    private const NEWER = '00000001-00000005-00000000-00000000000000000000000000000000';
    private const NEWEST = '00000001-00000007-00000000-00000000000000000000000000000000';
    private const PAGE = ['data' => [], 'next_cursor' => null];
    /**
     * The header as latchkey's server names it (src/http/bookmark.ts), written out: a client naming
     * another one would never be sent a bookmark, nor send one.
     */
    private const HEADER = 'Latchkey-Bookmark';

    /** @var list<array{0: string, 1: string, 2: array<string, string>, 3: ?string}> */
    private array $sent = [];
    /** @var list<float> */
    private array $slept = [];

    private static function answer(int $status, ?array $body = null, array $headers = []): array
    {
        $type = ['content-type' => $status >= 400 ? 'application/problem+json' : 'application/json'];
        return ['status' => $status, 'headers' => $type + $headers, 'body' => $body === null ? '' : json_encode($body)];
    }

    private function client(array $answers, mixed ...$options): Client
    {
        $transport = function (string $method, string $url, array $headers, ?string $body) use (&$answers): array {
            $this->sent[] = [$method, $url, $headers, $body];
            $next = array_shift($answers);
            if ($next instanceof \Throwable) {
                throw $next;
            }
            return $next;
        };
        return new Client('http://latchkey.test/', ...$options, transport: $transport, sleep: function (float $s): void {
            $this->slept[] = $s;
        });
    }

    public function testVerifyPostsTheKeyAndTheChecksWithoutAToken(): void
    {
        $this->client([self::answer(200, ['valid' => false, 'code' => 'NOT_FOUND', 'key_id' => null])], token: 'jwt')
            ->verify('k', ['scope' => 's', 'cost' => 0]);
        [$method, $url, $headers, $body] = $this->sent[0];
        $this->assertSame(['POST', 'http://latchkey.test/v1/verify'], [$method, $url]);
        $this->assertSame(['key' => 'k', 'scope' => 's', 'cost' => 0], json_decode($body, true));
        $this->assertArrayNotHasKey('Authorization', $headers);
    }

    public function testVerifySendsTheVerifyTokenWhenGiven(): void
    {
        $this->client([self::answer(200, ['valid' => false, 'code' => 'NOT_FOUND', 'key_id' => null])], verifyToken: 'vt')->verify('k');
        $this->assertSame('Bearer vt', $this->sent[0][2]['Authorization']);
    }

    public function testA503AndANetworkFailureAreRetriedWithBackoff(): void
    {
        $client = $this->client([
            self::answer(503, ['title' => 'Storage unavailable'], ['retry-after' => '2']),
            new TransportException('refused'),
            self::answer(200, ['valid' => true, 'code' => 'VALID']),
        ]);
        $this->assertSame('VALID', $client->verify('k')['code']);
        $this->assertSame([2.0, 0.5], $this->slept);
    }

    public function testA4xxIsThrownAtOnceWithItsProblem(): void
    {
        $client = $this->client([self::answer(429, ['title' => 'Too many', 'code' => 'verify_rate_limited'], ['retry-after' => '9'])]);
        try {
            $client->verify('k');
            $this->fail('no error');
        } catch (LatchkeyError $error) {
            $this->assertSame([429, 9, 'verify_rate_limited'], [$error->status, $error->retryAfter, $error->problem['code']]);
        }
        $this->assertCount(1, $this->sent);
    }

    public function testGivingUpAfterTheAttemptsWithStatus0(): void
    {
        $client = $this->client([new TransportException('a'), new TransportException('b', true), new TransportException('c', true)]);
        try {
            $client->verify('k');
            $this->fail('no error');
        } catch (LatchkeyError $error) {
            $this->assertSame([0, true, 'Timeout'], [$error->status, $error->isUnavailable(), $error->problem['title']]);
        }
        $this->assertCount(3, $this->sent);
    }

    public function testManagementCallsNeedTheToken(): void
    {
        try {
            $this->client([])->get('k1');
            $this->fail('no error');
        } catch (LatchkeyError $error) {
            $this->assertSame(401, $error->status);
        }
        $this->client([self::answer(200, ['id' => 'a/b'])], token: 'jwt')->get('a/b');
        $this->assertSame('http://latchkey.test/v1/keys/a%2Fb', $this->sent[0][1]);
        $this->assertSame('Bearer jwt', $this->sent[0][2]['Authorization']);
    }

    public function testRotateIsNeverRetried(): void
    {
        $client = $this->client([self::answer(503, ['title' => 'down'])], token: 'jwt');
        try {
            $client->rotate('k1');
            $this->fail('no error');
        } catch (LatchkeyError) {
            $this->assertCount(1, $this->sent);
        }
    }

    public function testTheBaseUrlMustBeHttp(): void
    {
        $this->expectException(\InvalidArgumentException::class);
        new Client('ftp://latchkey.test');
    }

    /** An answer carrying $bookmark as latchkey's management API sends it (transports lower-case names). */
    private static function marked(string $bookmark, int $status = 200, ?array $body = null): array
    {
        return self::answer($status, $body ?? self::PAGE, [strtolower(self::HEADER) => $bookmark]);
    }

    /** @return list<?string> the bookmark each request carried (null: none) */
    private function carried(): array
    {
        return array_map(static fn (array $sent): ?string => $sent[2][self::HEADER] ?? null, $this->sent);
    }

    public function testTheHeaderIsLatchkeys(): void
    {
        $this->assertSame(self::HEADER, Client::BOOKMARK_HEADER);
    }

    public function testEachAnswersBookmarkIsKeptAndSentWithTheNextManagementCall(): void
    {
        $client = $this->client([
            self::marked(self::OLDER, 201, ['id' => 'k1', 'key' => 'lk_x']),
            self::marked(self::NEWER, 200, ['id' => 'k1']),
            self::marked(self::NEWEST),
        ], token: 'jwt');
        $this->assertNull($client->bookmark());
        $client->create(['name' => 'first']);
        $this->assertSame(self::OLDER, $client->bookmark());
        $client->get('k1');
        $client->list();
        $this->assertSame([null, self::OLDER, self::NEWER], $this->carried());
        $this->assertSame(self::NEWEST, $client->bookmark());
    }

    public function testARefusalsBookmarkIsKeptTooAndAnOlderOrNoBookmarkNeverReplacesANewer(): void
    {
        $client = $this->client([
            self::marked(self::NEWER, 404, ['title' => 'Not found', 'code' => 'not_found']),
            self::marked(self::OLDER), // an answer to a call that overlapped with a newer one
            self::answer(200, self::PAGE),
            self::marked(self::NEWEST, 503, ['title' => 'Storage unavailable']),
            self::answer(200, self::PAGE),
            self::answer(200, self::PAGE),
        ], token: 'jwt');
        try {
            $client->get('missing');
            $this->fail('no error');
        } catch (LatchkeyError $error) {
            $this->assertSame(404, $error->status);
        }
        $this->assertSame(self::NEWER, $client->bookmark());
        $client->list();
        $this->assertSame(self::NEWER, $client->bookmark());
        $client->list();
        $this->assertSame(self::NEWER, $client->bookmark());
        $client->list(); // a 503 carrying one, then its retry
        $this->assertSame(self::NEWEST, $client->bookmark());
        $client->list();
        $this->assertSame([null, self::NEWER, self::NEWER, self::NEWER, self::NEWER, self::NEWEST], $this->carried());
    }

    public function testVerifyNeverSendsTheBookmark(): void
    {
        $verdict = self::answer(200, ['valid' => false, 'code' => 'NOT_FOUND', 'key_id' => null]);
        $client = $this->client([$verdict], token: 'jwt', bookmark: self::NEWER);
        $client->verify('lk_x');
        $this->assertSame([null], $this->carried());
        $this->assertSame(self::NEWER, $client->bookmark());
    }

    public function testTheBookmarkStartsFromTheArgumentAndCanBeSetOrCleared(): void
    {
        $page = self::answer(200, self::PAGE);
        $client = $this->client([$page, $page, $page], token: 'jwt', bookmark: self::OLDER);
        $this->assertSame(self::OLDER, $client->bookmark());
        $client->list();
        $client->setBookmark(self::NEWER);
        $client->list();
        $client->setBookmark(null);
        $client->list();
        $this->assertSame([self::OLDER, self::NEWER, null], $this->carried());
        $this->assertNull($client->bookmark());
        $client->setBookmark('');
        $this->assertNull($client->bookmark(), 'an empty bookmark is none');
    }

    public function testAListAfterACreateSendsBackLatchkeysBookmark(): void
    {
        $transport = new CountingTransport();
        $client = new Client((string) getenv('LATCHKEY_URL'), token: $this->devToken('php-bookmark-'), transport: $transport);
        $created = $client->create(['name' => 'php bookmark']);
        $answered = $transport->answered[0][strtolower(self::HEADER)] ?? '';
        $this->assertNotSame('', $answered, 'latchkey answers a create with its bookmark');
        $this->assertSame($answered, $client->bookmark());
        $this->assertContains($created['id'], array_column($client->list()['data'], 'id'));
        $this->assertSame($answered, $transport->sent[1][self::HEADER] ?? null);
    }

    /** A dev token for a fresh owner (skips the test without a latchkey to talk to). */
    private function devToken(string $prefix): string
    {
        if (!getenv('LATCHKEY_URL')) {
            $this->markTestSkipped('LATCHKEY_URL is not set: run `npm run test:guards`');
        }
        $repo = dirname(__DIR__, 3);
        return trim((string) shell_exec('cd ' . escapeshellarg($repo) . ' && node scripts/token.mjs ' . $prefix . getmypid()));
    }

    public function testTheManagementCallsAgainstLatchkey(): void
    {
        $client = new Client((string) getenv('LATCHKEY_URL'), token: $this->devToken('php-'));
        $created = $client->create(['name' => 'php lifecycle', 'scopes' => ['models:invoke']]);
        $this->assertNotEmpty($created['key']);
        $this->assertSame('php lifecycle', $client->get($created['id'])['name']);
        $this->assertContains($created['id'], array_column($client->list()['data'], 'id'));
        $this->assertSame('VALID', $client->verify($created['key'], ['scope' => 'models:invoke'])['code']);
        $this->assertSame('renamed', $client->update($created['id'], ['name' => 'renamed'])['name']);
        $rotated = $client->rotate($created['id']);
        $this->assertNotSame($created['key'], $rotated['key']);
        $client->revoke($rotated['id']);
        $this->assertNotNull($client->get($rotated['id'])['revoked_at']);
    }
}
