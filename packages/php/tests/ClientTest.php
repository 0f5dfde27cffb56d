<?php
declare(strict_types=1);

namespace Latchkey\Tests;

use Latchkey\Client;
use Latchkey\LatchkeyError;
use Latchkey\TransportException;
use PHPUnit\Framework\TestCase;

/** The client's transport policy, with a stub transport. */
final class ClientTest extends TestCase
{
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

    public function testTheManagementCallsAgainstLatchkey(): void
    {
        if (!getenv('LATCHKEY_URL')) {
            $this->markTestSkipped('LATCHKEY_URL is not set: run `npm run test:guards`');
        }
        $repo = dirname(__DIR__, 3);
        $token = trim((string) shell_exec('cd ' . escapeshellarg($repo) . ' && node scripts/token.mjs php-' . getmypid()));
        $client = new Client((string) getenv('LATCHKEY_URL'), token: $token);
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
