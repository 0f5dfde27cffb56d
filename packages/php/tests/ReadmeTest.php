<?php
declare(strict_types=1);

namespace Latchkey\Tests;

use PHPUnit\Framework\TestCase;

/** The README's script is the one ScriptTest serves, as written. */
final class ReadmeTest extends TestCase
{
    public function testTheExampleScriptIsInTheReadmeVerbatim(): void
    {
        $root = dirname(__DIR__);
        preg_match_all('/^```php\n(.*?)^```$/ms', (string) file_get_contents("$root/README.md"), $blocks);
        $this->assertContains((string) file_get_contents("$root/examples/server.php"), $blocks[1]);
    }
}
