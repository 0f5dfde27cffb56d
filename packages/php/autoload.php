<?php
// For projects without Composer: `require 'path/to/latchkey/autoload.php';` loads Latchkey\ classes
// from src/ the way Composer's PSR-4 autoloader does.
declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    if (!str_starts_with($class, 'Latchkey\\')) {
        return;
    }
    $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen('Latchkey\\'))) . '.php';
    if (is_file($file)) {
        require $file;
    }
});
