#!/usr/bin/env python3
"""Calculator tool for the react_calculator example.

Reads {"expression": "..."} as JSON on stdin and writes {"value": number} on stdout. Only
arithmetic is evaluated (numbers, + - * / // % **, parentheses); anything else is an error
reported as {"error": "..."} with exit status 1.
"""
import ast
import json
import operator
import sys

OPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.USub: operator.neg, ast.UAdd: operator.pos,
}
MAX_EXPONENT = 64


def evaluate(node):
    if isinstance(node, ast.Expression):
        return evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in OPS:
        left, right = evaluate(node.left), evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ValueError("exponent too large")
        return OPS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in OPS:
        return OPS[type(node.op)](evaluate(node.operand))
    raise ValueError("only arithmetic is allowed")


def main():
    try:
        args = json.load(sys.stdin)
        value = evaluate(ast.parse(str(args["expression"]), mode="eval"))
    except Exception as e:  # report any failure as a tool error, never a traceback
        json.dump({"error": f"{type(e).__name__}: {e}"}, sys.stdout)
        return 1
    json.dump({"value": value}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
