<?php
declare(strict_types=1);

namespace Latchkey\Tests;

use Latchkey\Guard;
use Latchkey\GuardRequest;
use Latchkey\LatchkeyError;
use Latchkey\Refusal;
use PHPUnit\Framework\TestCase;

/** A verifier answering one verdict (or throwing one error), recording what it was asked. */
final class Fixed
{
    /** @var list<array{0: string, 1: array<string, mixed>}> */
    public array $asked = [];

    public function __construct(private readonly mixed $answer)
    {
    }

    public function verify(string $key, array $checks = []): array
    {
        $this->asked[] = [$key, $checks];
        if ($this->answer instanceof \Throwable) {
            throw $this->answer;
        }
        return $this->answer;
    }
}

/** The guard's rules that need no latchkey. */
final class GuardTest extends TestCase
{
    private const LIVE = ['key_id' => 'k1', 'owner' => ['type' => 'user', 'id' => 'u'], 'scopes' => [], 'resources' => null, 'expires_at' => null, 'enabled' => true];

    private static function request(array $headers = [], string $path = '/x'): GuardRequest
    {
        $lowered = array_change_key_case($headers);
        return new GuardRequest('POST', $path, static fn (string $name): ?string => $lowered[strtolower($name)] ?? null);
    }

    public function testTheSchemesAndTheHeader(): void
    {
        $authorization = static fn (string $value): \Closure => static fn (string $name): ?string => $name === 'authorization' ? $value : null;
        $this->assertSame('abc', Guard::presentedKey($authorization('Bearer abc')));
        $this->assertSame('abc', Guard::presentedKey($authorization('api-key abc ')));
        $this->assertNull(Guard::presentedKey($authorization('Basic abc')));
        $this->assertNull(Guard::presentedKey($authorization('Bearer a b')));
        $this->assertSame('abc', Guard::presentedKey(static fn (string $name): ?string => $name === 'api-key' ? ' abc ' : null));
        $this->assertNull(Guard::presentedKey(static fn (string $name): ?string => $name === 'api-key' ? '  ' : null));
    }

    public function testChecksArePassedAndClosuresSeeTheRequest(): void
    {
        $verifier = new Fixed(['valid' => true, 'code' => 'VALID'] + self::LIVE);
        $guard = new Guard($verifier, scope: 's', resource: static fn (GuardRequest $r): string => substr($r->path, 1), cost: 2, ip: static fn (): string => '10.0.0.1');
        $this->assertSame('k1', $guard->decide(self::request(['Api-Key' => 'k'], '/doc'))['key_id']);
        $this->assertSame([['k', ['scope' => 's', 'resource' => 'doc', 'cost' => 2, 'ip' => '10.0.0.1']]], $verifier->asked);
    }

    public function testAResourceIdThatNamesAFunctionStaysAnId(): void
    {
        $verifier = new Fixed(['valid' => true, 'code' => 'VALID'] + self::LIVE);
        (new Guard($verifier, resource: 'date'))->decide(self::request(['Api-Key' => 'k']));
        $this->assertSame('date', $verifier->asked[0][1]['resource']);
    }

    public function testValidAloneIsNotTrusted(): void
    {
        $outcome = (new Guard(new Fixed(['valid' => true, 'code' => 'INSUFFICIENT_SCOPE'] + self::LIVE)))->decide(self::request(['Api-Key' => 'k']));
        $this->assertInstanceOf(Refusal::class, $outcome);
        $this->assertSame([403, 'INSUFFICIENT_SCOPE'], [$outcome->status, $outcome->problem['verdict']]);
    }

    public function testAnUnknownCodeIsA401(): void
    {
        $outcome = (new Guard(new Fixed(['valid' => false, 'code' => 'SOMETHING_NEW'])))->decide(self::request(['Api-Key' => 'k']));
        $this->assertSame([401, 'The API key is not valid'], [$outcome->status, $outcome->problem['detail']]);
        $this->assertSame(['key_not_found', 'SOMETHING_NEW'], [$outcome->problem['code'], $outcome->problem['verdict']]);
    }

    public function testARefusalIsLatchkeysProblemWithTheVerdict(): void
    {
        $outcome = (new Guard(new Fixed(['valid' => false, 'code' => 'REVOKED', 'key_id' => null])))->decide(self::request(['Api-Key' => 'k']));
        $this->assertSame(
            '{"type":"https://latchkey.dev/problems/key-revoked","title":"API key revoked","status":401,'
            . '"detail":"The API key has been revoked","code":"key_revoked","verdict":"REVOKED"}',
            $outcome->body(),
        );
    }

    public function testAResourceBeyondTheKeyIsForbiddenWithWhatItExceeded(): void
    {
        $outcome = (new Guard(new Fixed(['valid' => false, 'code' => 'RESOURCE_NOT_ALLOWED'] + self::LIVE)))->decide(self::request(['Api-Key' => 'k']));
        $this->assertSame(
            [403, 'forbidden', 'https://latchkey.dev/problems/forbidden', 'resources'],
            [$outcome->status, $outcome->problem['code'], $outcome->problem['type'], $outcome->problem['exceeded']],
        );
    }

    public function testNoKeyIsAuthenticationRequiredWithoutAVerdict(): void
    {
        $outcome = (new Guard(new Fixed(null)))->decide(self::request());
        $this->assertSame([401, 'authentication_required'], [$outcome->status, $outcome->problem['code']]);
        $this->assertSame('https://latchkey.dev/problems/authentication-required', $outcome->problem['type']);
        $this->assertArrayNotHasKey('verdict', $outcome->problem);
    }

    public function testTheRealmIsNamedAndCleaned(): void
    {
        $outcome = (new Guard(new Fixed(null), realm: 'my "api"'))->decide(self::request());
        $this->assertSame('Bearer realm="my api", Api-Key realm="my api"', $outcome->headers['WWW-Authenticate']);
    }

    public function testUsageExceededHasNoRetryAfterAndCarriesTheCredits(): void
    {
        $verdict = ['valid' => false, 'code' => 'USAGE_EXCEEDED'] + self::LIVE + ['credits' => ['remaining' => 1]];
        $outcome = (new Guard(new Fixed($verdict)))->decide(self::request(['Api-Key' => 'k']));
        $this->assertSame(429, $outcome->status);
        $this->assertArrayNotHasKey('Retry-After', $outcome->headers);
        $this->assertSame(['remaining' => 1], $outcome->problem['credits']);
        $this->assertSame('key_usage_exceeded', json_decode($outcome->body(), true)['code']);
        $this->assertSame('application/problem+json', $outcome->allHeaders()['Content-Type']);
    }

    public function testFailuresToGetAVerdict(): void
    {
        $outcome = static fn (LatchkeyError $error) => (new Guard(new Fixed($error)))->decide(self::request(['Api-Key' => 'k']));
        $invalid = $outcome(new LatchkeyError(422, ['title' => 'Validation failed']));
        $this->assertSame([400, 'Bad Request'], [$invalid->status, $invalid->problem['title']]);
        $limited = $outcome(new LatchkeyError(429, ['title' => 'Too many'], 17));
        $this->assertSame([503, '17'], [$limited->status, $limited->headers['Retry-After']]);
        $down = $outcome(new LatchkeyError(0, ['title' => 'Network error']));
        $this->assertSame([503, '5'], [$down->status, $down->headers['Retry-After']]);
        $this->assertSame('about:blank', $down->problem['type']);
        $this->assertArrayNotHasKey('code', $down->problem);
        $this->expectException(LatchkeyError::class);
        $outcome(new LatchkeyError(500, ['title' => 'Internal error']));
    }

    public function testTheTightestLimitAndTheLongestWaitOfTheExhaustedOnes(): void
    {
        $now = 1_800_000_000.0;
        $limit = static fn (string $name, int $size, int $remaining, float $in): array => ['name' => $name, 'limit' => $size, 'remaining' => $remaining, 'reset' => ($now + $in) * 1000];
        $verdict = ['code' => 'RATE_LIMITED', 'ratelimits' => [$limit('minute', 10, 0, 60), $limit('second', 2, 0, 0.5), $limit('day', 100, 50, 3600)]];
        $this->assertSame(
            ['Retry-After' => '6', 'RateLimit-Limit' => '10', 'RateLimit-Remaining' => '0', 'RateLimit-Reset' => '60'],
            Guard::usageHeaders($verdict, $now),
        );
        $short = ['ratelimits' => [$limit('m', 1000, 0, 0.2)]];
        $this->assertSame('1', Guard::usageHeaders(['code' => 'RATE_LIMITED'] + $short, $now)['Retry-After']);
        $this->assertArrayNotHasKey('Retry-After', Guard::usageHeaders(['code' => 'USAGE_EXCEEDED'] + $short, $now));
        $this->assertSame([], Guard::usageHeaders(['code' => 'VALID'], $now));
    }

    public function testTheRefusalsCoverExactlyLatchkeysVerdictCodes(): void
    {
        if (!getenv('LATCHKEY_URL')) {
            $this->markTestSkipped('LATCHKEY_URL is not set: run `npm run test:guards`');
        }
        $schemas = json_decode((string) file_get_contents(getenv('LATCHKEY_URL') . '/openapi.json'), true)['components']['schemas'];
        $codes = array_merge($schemas['VerifyRefusal']['properties']['code']['enum'], $schemas['VerifyVerdict']['properties']['code']['enum']);
        $ours = array_merge(array_keys(Guard::REFUSALS), ['VALID']);
        sort($codes);
        sort($ours);
        $this->assertSame($codes, $ours);
    }
}
