<?php
declare(strict_types=1);

namespace Latchkey;

/**
 * The request as the guard's options see it, the same in every framework: its method, path (no
 * scheme, host or query), the path parameters the router found, the socket's remote address (a
 * proxy's, behind one) and header($name): a header's value or null.
 */
final class GuardRequest
{
    /** @var \Closure(string): ?string */
    private \Closure $header;

    /** @param array<string, mixed> $params */
    public function __construct(
        public readonly string $method,
        public readonly string $path,
        callable $header,
        public readonly array $params = [],
        public readonly ?string $peer = null,
    ) {
        $this->header = \Closure::fromCallable($header);
    }

    public function header(string $name): ?string
    {
        return ($this->header)($name);
    }

    /** The request PHP's SAPI is serving ($_SERVER), for a plain script. */
    public static function fromGlobals(): self
    {
        $server = $_SERVER;
        $path = parse_url((string) ($server['REQUEST_URI'] ?? '/'), PHP_URL_PATH);
        return new self(
            (string) ($server['REQUEST_METHOD'] ?? 'GET'),
            is_string($path) ? $path : '/',
            static function (string $name) use ($server): ?string {
                $field = strtoupper(str_replace('-', '_', $name));
                $value = $server["HTTP_$field"] ?? ($field === 'AUTHORIZATION' ? ($server['REDIRECT_HTTP_AUTHORIZATION'] ?? null) : null);
                return $value === null ? null : (string) $value;
            },
            [],
            isset($server['REMOTE_ADDR']) ? (string) $server['REMOTE_ADDR'] : null,
        );
    }
}
