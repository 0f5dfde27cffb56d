<?php
declare(strict_types=1);

namespace Latchkey\Tests;

use Latchkey\Client;
use Latchkey\Guard;
use Latchkey\Psr15\KeyMiddleware;
use Psr\Http\Server\MiddlewareInterface;

final class Psr15MiddlewareTest extends GuardContract
{
    protected function post(array $headers): array
    {
        $factory = new Factory();
        $guard = new Guard(new Client(self::env('LATCHKEY_URL')), scope: 'models:invoke');
        $middleware = new KeyMiddleware($guard, $factory, $factory);
        $response = $middleware->process(new ServerRequest('POST', '/generate', $headers), new EchoVerdict());
        return [$response->getStatusCode(), $response->headers(), json_decode((string) $response->getBody(), true)];
    }

    public function testItIsAPsr15MiddlewareWhenTheInterfaceExists(): void
    {
        $factory = new Factory();
        $guard = new Guard(new Client('http://latchkey.test'));
        $this->assertInstanceOf(MiddlewareInterface::class, new KeyMiddleware($guard, $factory, $factory));
    }
}
