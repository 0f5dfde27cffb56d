<?php
declare(strict_types=1);

namespace Latchkey;

/** A refused request: the status, the problem document and the headers to answer with. */
final class Refusal
{
    /**
     * @param array<string, mixed> $problem
     * @param array<string, string> $headers
     */
    public function __construct(
        public readonly int $status,
        public array $problem,
        public array $headers,
    ) {
    }

    public function body(): string
    {
        return json_encode($this->problem, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);
    }

    /** @return array<string, string> the response headers, Content-Type: application/problem+json first */
    public function allHeaders(): array
    {
        return ['Content-Type' => 'application/problem+json'] + $this->headers;
    }

    /** Answers the request PHP's SAPI is serving with this refusal. */
    public function send(): void
    {
        http_response_code($this->status);
        foreach ($this->allHeaders() as $name => $value) {
            header("$name: $value");
        }
        echo $this->body();
    }
}
