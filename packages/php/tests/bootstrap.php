<?php
declare(strict_types=1);

// The PSR-7/15/17 interfaces the middleware names, as their packages declare them (the methods the
// middleware and the doubles use), so the tests run with no Composer packages installed; then the
// package through its own autoloader, as a project without Composer loads it.
require __DIR__ . '/Support/psr.php';
require __DIR__ . '/../autoload.php';
require __DIR__ . '/Support/doubles.php';
require __DIR__ . '/Support/GuardContract.php';
