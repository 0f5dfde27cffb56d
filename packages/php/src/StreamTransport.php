<?php
declare(strict_types=1);

namespace Latchkey;

/**
 * The default transport: PHP's own http stream wrapper (no curl needed). A transport is any callable
 * `(string $method, string $url, array $headers, ?string $body, float $timeout): array` returning
 * `['status' => int, 'headers' => array<lowercase name, string>, 'body' => string]`, and throwing
 * TransportException when no answer came.
 */
final class StreamTransport
{
    /**
     * @param array<string, string> $headers
     * @return array{status: int, headers: array<string, string>, body: string}
     */
    public function __invoke(string $method, string $url, array $headers, ?string $body, float $timeout): array
    {
        $lines = [];
        foreach ($headers as $name => $value) {
            $lines[] = "$name: $value";
        }
        $context = stream_context_create(['http' => [
            'method' => $method,
            'header' => implode("\r\n", $lines),
            'content' => $body ?? '',
            'timeout' => $timeout,
            'ignore_errors' => true,
            'follow_location' => 0,
            'protocol_version' => 1.1,
        ]]);
        $started = microtime(true);
        $http_response_header = [];
        $answer = @file_get_contents($url, false, $context);
        $raw = function_exists('http_get_last_response_headers')
            ? (http_get_last_response_headers() ?? [])
            : $http_response_header;
        if ($answer === false || $raw === []) {
            $error = error_get_last()['message'] ?? 'no answer';
            $timedOut = microtime(true) - $started >= $timeout || str_contains(strtolower($error), 'timed out');
            throw new TransportException($error, $timedOut);
        }
        $status = 0;
        $received = [];
        foreach ($raw as $line) {
            if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $match) === 1) {
                // A new status line starts a new response (e.g. after a 100 Continue).
                $status = (int) $match[1];
                $received = [];
            } elseif (str_contains($line, ':')) {
                [$name, $value] = explode(':', $line, 2);
                $received[strtolower(trim($name))] = trim($value);
            }
        }
        return ['status' => $status, 'headers' => $received, 'body' => $answer];
    }
}
