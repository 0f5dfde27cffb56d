<?php
declare(strict_types=1);

namespace Latchkey\Psr15;

use Latchkey\Psr15\Internal\Guarding;
use Psr\Http\Server\MiddlewareInterface;

/*
 * The guard as PSR-15 middleware. This package has no dependencies, so the class is declared twice
 * over: when psr/http-server-middleware is installed (its interface exists when this file loads), it
 * implements Psr\Http\Server\MiddlewareInterface, and any PSR-15 pipeline (Slim, Mezzio, ...) takes
 * it; otherwise it is the same class without the interface, whose process() works with any PSR-7
 * request and PSR-15 handler all the same. Refusals are built with the PSR-17 response and stream
 * factories given to the constructor. The VALID verdict is the request attribute `verdict`.
 */
if (interface_exists(MiddlewareInterface::class)) {
    final class KeyMiddleware implements MiddlewareInterface
    {
        use Guarding;
    }
} else {
    final class KeyMiddleware
    {
        use Guarding;
    }
}
