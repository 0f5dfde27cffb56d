<?php
declare(strict_types=1);

namespace Psr\Http\Message {
    if (!interface_exists(UriInterface::class)) {
        interface UriInterface
        {
            public function getPath();
        }

        interface StreamInterface
        {
            public function __toString();
        }

        interface MessageInterface
        {
            public function hasHeader($name);

            public function getHeaderLine($name);

            public function withHeader($name, $value);

            public function getBody();

            public function withBody(StreamInterface $body);
        }

        interface RequestInterface extends MessageInterface
        {
            public function getMethod();

            public function getUri();
        }

        interface ServerRequestInterface extends RequestInterface
        {
            public function getServerParams();

            public function getAttributes();

            public function getAttribute($name, $default = null);

            public function withAttribute($name, $value);
        }

        interface ResponseInterface extends MessageInterface
        {
            public function getStatusCode();
        }

        interface ResponseFactoryInterface
        {
            public function createResponse(int $code = 200, string $reasonPhrase = ''): ResponseInterface;
        }

        interface StreamFactoryInterface
        {
            public function createStream(string $content = ''): StreamInterface;
        }
    }
}

namespace Psr\Http\Server {
    use Psr\Http\Message\ResponseInterface;
    use Psr\Http\Message\ServerRequestInterface;

    if (!interface_exists(RequestHandlerInterface::class)) {
        interface RequestHandlerInterface
        {
            public function handle(ServerRequestInterface $request): ResponseInterface;
        }

        interface MiddlewareInterface
        {
            public function process(ServerRequestInterface $request, RequestHandlerInterface $handler): ResponseInterface;
        }
    }
}
