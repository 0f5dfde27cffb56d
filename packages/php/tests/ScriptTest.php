<?php
declare(strict_types=1);

namespace Latchkey\Tests;

/** The README's script (examples/server.php) served by `php -S`, as written. */
final class ScriptTest extends GuardContract
{
    /** @var resource|null */
    private static $server = null;
    private static string $base = '';

    public static function setUpBeforeClass(): void
    {
        if (!getenv('LATCHKEY_URL')) {
            return;
        }
        $port = (int) (getenv('LATCHKEY_GUARDS_PHP_PORT') ?: 8808);
        self::$base = "http://127.0.0.1:$port";
        $command = [PHP_BINARY, '-S', "127.0.0.1:$port", 'examples/server.php'];
        self::$server = proc_open($command, [['file', '/dev/null', 'r'], ['file', '/dev/null', 'w'], ['file', '/dev/null', 'w']], $pipes, dirname(__DIR__));
        for ($i = 0; $i < 100; $i++) {
            $socket = @fsockopen('127.0.0.1', $port, $code, $message, 0.2);
            if ($socket !== false) {
                fclose($socket);
                return;
            }
            usleep(100_000);
        }
        self::fail("php -S did not listen on port $port");
    }

    public static function tearDownAfterClass(): void
    {
        if (self::$server !== null) {
            proc_terminate(self::$server);
            proc_close(self::$server);
            self::$server = null;
        }
    }

    protected function post(array $headers): array
    {
        $lines = [];
        foreach ($headers as $name => $value) {
            $lines[] = "$name: $value";
        }
        $context = stream_context_create(['http' => ['method' => 'POST', 'header' => implode("\r\n", $lines), 'ignore_errors' => true]]);
        $body = file_get_contents(self::$base . '/generate', false, $context);
        $status = 0;
        $received = [];
        foreach ($http_response_header as $line) {
            if (preg_match('#^HTTP/\S+ (\d{3})#', $line, $match) === 1) {
                $status = (int) $match[1];
            } elseif (str_contains($line, ':')) {
                [$name, $value] = explode(':', $line, 2);
                $received[strtolower($name)] = trim($value);
            }
        }
        return [$status, $received, json_decode((string) $body, true)];
    }
}
