<?php
declare(strict_types=1);

namespace Latchkey\Psr15\Internal;

use Latchkey\Guard;
use Latchkey\GuardRequest;
use Latchkey\Refusal;
use Psr\Http\Message\ResponseFactoryInterface;
use Psr\Http\Message\ResponseInterface;
use Psr\Http\Message\ServerRequestInterface;
use Psr\Http\Message\StreamFactoryInterface;
use Psr\Http\Server\RequestHandlerInterface;

/** The body of Latchkey\Psr15\KeyMiddleware (see there why it is a trait). */
trait Guarding
{
    public function __construct(
        private readonly Guard $guard,
        private readonly ResponseFactoryInterface $responses,
        private readonly StreamFactoryInterface $streams,
        private readonly string $attribute = 'verdict',
    ) {
    }

    public function process(ServerRequestInterface $request, RequestHandlerInterface $handler): ResponseInterface
    {
        $outcome = $this->guard->decide(self::guardRequest($request));
        if ($outcome instanceof Refusal) {
            $response = $this->responses->createResponse($outcome->status);
            foreach ($outcome->allHeaders() as $name => $value) {
                $response = $response->withHeader($name, $value);
            }
            return $response->withBody($this->streams->createStream($outcome->body()));
        }
        return $handler->handle($request->withAttribute($this->attribute, $outcome));
    }

    /** The PSR-7 request as the guard sees it: its attributes are the path parameters a router set. */
    public static function guardRequest(ServerRequestInterface $request): GuardRequest
    {
        $server = $request->getServerParams();
        return new GuardRequest(
            $request->getMethod(),
            $request->getUri()->getPath(),
            static fn (string $name): ?string => $request->hasHeader($name) ? $request->getHeaderLine($name) : null,
            $request->getAttributes(),
            isset($server['REMOTE_ADDR']) ? (string) $server['REMOTE_ADDR'] : null,
        );
    }
}
