<?php
declare(strict_types=1);

namespace Latchkey;

/**
 * One error type for every failed latchkey call: `status` is the HTTP status (0 when no response
 * came: a network failure or a timeout), `problem` latchkey's RFC 9457 document (or one of the same
 * shape when there was none), `retryAfter` the seconds from `Retry-After` (null without one).
 */
final class LatchkeyError extends \RuntimeException
{
    /** @param array<string, mixed> $problem */
    public function __construct(
        public readonly int $status,
        public readonly array $problem,
        public readonly ?int $retryAfter = null,
    ) {
        $title = (string) ($problem['title'] ?? 'Error');
        $detail = $problem['detail'] ?? null;
        parent::__construct($detail ? "$title: $detail" : $title);
    }

    /** latchkey could not be reached, did not answer in time, or is temporarily unavailable (503). */
    public function isUnavailable(): bool
    {
        return $this->status === 0 || $this->status === 503;
    }

    /** @return array<string, mixed> */
    public static function syntheticProblem(int $status, string $title, ?string $detail = null): array
    {
        $problem = ['type' => 'about:blank', 'title' => $title, 'status' => $status];
        if ($detail !== null && $detail !== '') {
            $problem['detail'] = $detail;
        }
        return $problem;
    }
}
