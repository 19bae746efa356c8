"""Tests of template_adapter's tools, run in-process (no pool, no gRPC).

snakepit_bridge must be importable: `snakepit new-adapter` prints the
PYTHONPATH to use. Then: python3 -m unittest test_template_adapter
"""

import unittest

from snakepit_bridge import InvalidArgumentsError

from template_adapter import TemplateAdapter


class GreetTest(unittest.TestCase):
    def setUp(self) -> None:
        self.adapter = TemplateAdapter()
        self.adapter.initialize()

    def tearDown(self) -> None:
        self.adapter.cleanup()

    def test_greets_by_name(self) -> None:
        # execute_tool is what the worker calls, with the call's arguments.
        self.assertEqual(self.adapter.execute_tool("greet", {"name": "Ada"}), "Hello, Ada!")
        arguments = {"name": "Ada", "punctuation": "?"}
        self.assertEqual(self.adapter.execute_tool("greet", arguments), "Hello, Ada?")

    def test_a_missing_argument_is_refused_before_the_tool_runs(self) -> None:
        with self.assertRaises(InvalidArgumentsError):
            self.adapter.execute_tool("greet", {})

    def test_the_tool_is_listed_with_its_parameters(self) -> None:
        tools = {tool.name: tool for tool in self.adapter.get_tools()}
        self.assertEqual([p.name for p in tools["greet"].parameters], ["name", "punctuation"])


if __name__ == "__main__":
    unittest.main()
