<?php
declare(strict_types=1);

namespace Latchkey\Laravel;

use Closure;
use Latchkey\Guard;
use Latchkey\GuardRequest;
use Latchkey\Refusal;

/**
 * The guard as Laravel route middleware: `->middleware(KeyMiddleware::class . ':models:invoke')`
 * asks for that scope (the parameter overrides the guard's own). Bind it once in a service provider:
 *
 *     $this->app->singleton(KeyMiddleware::class, fn () => new KeyMiddleware(
 *         new Guard(new Client(config('services.latchkey.url'))),
 *     ));
 *
 * The VALID verdict is `$request->attributes->get('verdict')`. A refusal is answered with an
 * Illuminate\Http\Response (or a Symfony Response, or, outside Laravel and Symfony, the Refusal
 * itself), or with what `$respond(Refusal)` returns when one is given. Needs no Laravel class to
 * load: it reads the request through the methods Illuminate\Http\Request has (header, method, path,
 * route, ip, attributes).
 */
final class KeyMiddleware
{
    /** @var (callable(Refusal): mixed)|null */
    private $respond;

    public function __construct(private readonly Guard $guard, ?callable $respond = null, private readonly string $attribute = 'verdict')
    {
        $this->respond = $respond;
    }

    /** @param object $request an Illuminate\Http\Request */
    public function handle(object $request, Closure $next, ?string $scope = null): mixed
    {
        $outcome = $this->guard->withScope($scope)->decide(self::guardRequest($request));
        if ($outcome instanceof Refusal) {
            return $this->respond !== null ? ($this->respond)($outcome) : self::response($outcome);
        }
        $request->attributes->set($this->attribute, $outcome);
        return $next($request);
    }

    public static function guardRequest(object $request): GuardRequest
    {
        $route = $request->route();
        $params = is_object($route) && method_exists($route, 'parameters') ? $route->parameters() : [];
        return new GuardRequest(
            strtoupper((string) $request->method()),
            '/' . ltrim((string) $request->path(), '/'),
            static function (string $name) use ($request): ?string {
                $value = $request->header($name);
                if (is_array($value)) {
                    $value = $value[0] ?? null;
                }
                return $value === null ? null : (string) $value;
            },
            is_array($params) ? $params : [],
            $request->ip(),
        );
    }

    /** The refusal as the framework's response: Laravel's, else Symfony's, else the Refusal itself. */
    public static function response(Refusal $refusal): mixed
    {
        foreach (['Illuminate\Http\Response', 'Symfony\Component\HttpFoundation\Response'] as $class) {
            if (class_exists($class)) {
                return new $class($refusal->body(), $refusal->status, $refusal->allHeaders());
            }
        }
        return $refusal;
    }
}
