<?php
declare(strict_types=1);

namespace Latchkey\Tests;

use Latchkey\Client;
use Latchkey\Guard;
use Latchkey\Laravel\KeyMiddleware;
use Latchkey\Refusal;

final class LaravelMiddlewareTest extends GuardContract
{
    protected function post(array $headers): array
    {
        // The scope comes from the route: ->middleware(KeyMiddleware::class . ':models:invoke').
        $middleware = new KeyMiddleware(new Guard(new Client(self::env('LATCHKEY_URL'))));
        $request = new LaravelRequest('POST', '/generate', $headers);
        $answer = $middleware->handle($request, static function (LaravelRequest $request): array {
            $verdict = $request->attributes->get('verdict');
            return ['key' => $verdict['key_id'], 'owner' => $verdict['owner']['id'], 'scopes' => $verdict['scopes']];
        }, 'models:invoke');
        if ($answer instanceof Refusal) {
            return [$answer->status, array_change_key_case($answer->allHeaders()), json_decode($answer->body(), true)];
        }
        return [200, ['content-type' => 'application/json'], $answer];
    }

    public function testARespondCallableShapesTheRefusal(): void
    {
        $middleware = new KeyMiddleware(new Guard(new Client('http://latchkey.test')), static fn (Refusal $r): string => "refused {$r->status}");
        $next = static fn (): string => 'handled';
        $this->assertSame('refused 401', $middleware->handle(new LaravelRequest('GET', '/'), $next));
    }
}
