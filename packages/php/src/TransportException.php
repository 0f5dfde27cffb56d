<?php
declare(strict_types=1);

namespace Latchkey;

/** A transport got no answer: `timedOut` tells a timeout from any other network failure. */
final class TransportException extends \RuntimeException
{
    public function __construct(string $message, public readonly bool $timedOut = false)
    {
        parent::__construct($message);
    }
}
