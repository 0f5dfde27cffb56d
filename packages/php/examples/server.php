<?php
// LATCHKEY_URL=http://127.0.0.1:8787 php -S 127.0.0.1:8000 examples/server.php
require __DIR__ . '/../autoload.php'; // or Composer's vendor/autoload.php

use Latchkey\Client;
use Latchkey\Guard;

$guard = new Guard(new Client(getenv('LATCHKEY_URL')), scope: 'models:invoke');
$verdict = $guard->protect(); // a refusal (401, 403, 429, 503) is answered and the script ends here

header('Content-Type: application/json');
echo json_encode(['key' => $verdict['key_id'], 'owner' => $verdict['owner']['id'], 'scopes' => $verdict['scopes']]);
