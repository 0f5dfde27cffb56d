"""The README's examples are the example apps the framework tests drive, as written."""
import unittest

from tests.support import EXAMPLES, readme_blocks


class ReadmeExamples(unittest.TestCase):
    def test_each_example_app_is_in_the_readme_verbatim(self):
        blocks = readme_blocks("python")
        for name in ("fastapi_app.py", "flask_app.py", "starlette_app.py"):
            with self.subTest(name):
                self.assertIn((EXAMPLES / name).read_text(encoding="utf-8"), blocks)


if __name__ == "__main__":
    unittest.main()
