<?php
declare(strict_types=1);

namespace Latchkey\Tests;

use Latchkey\StreamTransport;
use Psr\Http\Message\ResponseFactoryInterface;
use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\ServerRequestInterface;
use Psr\Http\Message\StreamFactoryInterface;
use Psr\Http\Message\StreamInterface;
use Psr\Http\Message\UriInterface;
use Psr\Http\Server\RequestHandlerInterface;

/** Minimal immutable PSR-7 messages: headers by lower-case name. */
trait Headers
{
    /** @var array<string, string> */
    private array $headers = [];
    private ?StreamInterface $body = null;

    public function hasHeader($name)
    {
        return isset($this->headers[strtolower($name)]);
    }

    public function getHeaderLine($name)
    {
        return $this->headers[strtolower($name)] ?? '';
    }

    public function withHeader($name, $value)
    {
        $copy = clone $this;
        $copy->headers[strtolower($name)] = $value;
        return $copy;
    }

    public function getBody()
    {
        return $this->body ?? new Stream('');
    }

    public function withBody(StreamInterface $body)
    {
        $copy = clone $this;
        $copy->body = $body;
        return $copy;
    }

    /** @return array<string, string> */
    public function headers(): array
    {
        return $this->headers;
    }
}

final class Stream implements StreamInterface
{
    public function __construct(private readonly string $content)
    {
    }

    public function __toString()
    {
        return $this->content;
    }
}

final class Uri implements UriInterface
{
    public function __construct(private readonly string $path)
    {
    }

    public function getPath()
    {
        return $this->path;
    }
}

final class ServerRequest implements ServerRequestInterface
{
    use Headers;

    /** @var array<string, mixed> */
    private array $attributes = [];

    /** @param array<string, string> $headers */
    public function __construct(private readonly string $method, private readonly string $path, array $headers = [])
    {
        foreach ($headers as $name => $value) {
            $this->headers[strtolower($name)] = $value;
        }
    }

    public function getMethod()
    {
        return $this->method;
    }

    public function getUri()
    {
        return new Uri($this->path);
    }

    public function getServerParams()
    {
        return ['REMOTE_ADDR' => '127.0.0.1'];
    }

    public function getAttributes()
    {
        return $this->attributes;
    }

    public function getAttribute($name, $default = null)
    {
        return $this->attributes[$name] ?? $default;
    }

    public function withAttribute($name, $value)
    {
        $copy = clone $this;
        $copy->attributes[$name] = $value;
        return $copy;
    }
}

final class Response implements ResponseInterface
{
    use Headers;

    public function __construct(private readonly int $status)
    {
    }

    public function getStatusCode()
    {
        return $this->status;
    }
}

final class Factory implements ResponseFactoryInterface, StreamFactoryInterface
{
    public function createResponse(int $code = 200, string $reasonPhrase = ''): ResponseInterface
    {
        return new Response($code);
    }

    public function createStream(string $content = ''): StreamInterface
    {
        return new Stream($content);
    }
}

/** The route's handler: answers 200 with the verdict it was handed. */
final class EchoVerdict implements RequestHandlerInterface
{
    public function handle(ServerRequestInterface $request): ResponseInterface
    {
        $verdict = $request->getAttribute('verdict');
        $body = json_encode(['key' => $verdict['key_id'], 'owner' => $verdict['owner']['id'], 'scopes' => $verdict['scopes']]);
        return (new Response(200))->withHeader('Content-Type', 'application/json')->withBody(new Stream($body));
    }
}

/** The parts of Illuminate\Http\Request the Laravel middleware reads, as Laravel answers them. */
final class LaravelRequest
{
    public ParameterBag $attributes;
    /** @var array<string, string> */
    private array $headers = [];

    /** @param array<string, string> $headers */
    public function __construct(private readonly string $method, private readonly string $path, array $headers = [])
    {
        $this->attributes = new ParameterBag();
        foreach ($headers as $name => $value) {
            $this->headers[strtolower($name)] = $value;
        }
    }

    public function header(?string $key = null, $default = null)
    {
        return $this->headers[strtolower((string) $key)] ?? $default;
    }

    public function method(): string
    {
        return $this->method;
    }

    /** Laravel's path(): no leading slash, "/" for the root. */
    public function path(): string
    {
        $path = trim($this->path, '/');
        return $path === '' ? '/' : $path;
    }

    public function route()
    {
        return null;
    }

    public function ip(): ?string
    {
        return '127.0.0.1';
    }
}

final class ParameterBag
{
    /** @var array<string, mixed> */
    private array $items = [];

    public function set(string $key, mixed $value): void
    {
        $this->items[$key] = $value;
    }

    public function get(string $key, mixed $default = null): mixed
    {
        return $this->items[$key] ?? $default;
    }
}

/**
 * The real transport, counting the requests that reach latchkey and keeping the headers each one sent
 * ($sent) and each answer carried ($answered, by lower-case name).
 */
final class CountingTransport
{
    /** @var list<array{0: string, 1: string}> */
    public array $calls = [];
    /** @var list<array<string, string>> */
    public array $sent = [];
    /** @var list<array<string, string>> */
    public array $answered = [];
    private StreamTransport $inner;

    public function __construct()
    {
        $this->inner = new StreamTransport();
    }

    public function __invoke(string $method, string $url, array $headers, ?string $body, float $timeout): array
    {
        $this->calls[] = [$method, $url];
        $this->sent[] = $headers;
        $answer = ($this->inner)($method, $url, $headers, $body, $timeout);
        $this->answered[] = $answer['headers'];
        return $answer;
    }
}
