"""Known-correct completions of five multilingual HumanEval problems per language, written for this project.

MultiPL-E ships no reference solutions; these continuations of each problem's prompt (as a base model would
write them: the tests close the function in C++, Java, C# and Bash, the others close it themselves) show the
harness scoring 100% where it must, and are the programs ``benchmarks/eval.py`` times.
"""

from __future__ import annotations

GCD, STRLEN, PALINDROME, ADD, SUM_TO_N, FIB = "_13_", "_23_", "_48_", "_53_", "_60_", "_55_"

CORRECT = {
    "cpp": {
        GCD: "    return b == 0 ? a : greatest_common_divisor(b, a % b);\n",
        STRLEN: "    return string.size();\n",
        PALINDROME: "    return std::string(text.rbegin(), text.rend()) == text;\n",
        ADD: "    return x + y;\n",
        SUM_TO_N: "    return n * (n + 1) / 2;\n",
    },
    "java": {
        GCD: "        return b == 0 ? a : greatestCommonDivisor(b, a % b);\n",
        STRLEN: "        return string.length();\n",
        PALINDROME: "        return new StringBuilder(text).reverse().toString().equals(text);\n",
        ADD: "        return x + y;\n",
        SUM_TO_N: "        return n * (n + 1) / 2;\n",
    },
    "cs": {
        GCD: "        return b == 0 ? a : GreatestCommonDivisor(b, a % b);\n",
        STRLEN: "        return str.Length;\n",
        PALINDROME: "        return new string(text.Reverse().ToArray()) == text;\n",
        ADD: "        return x + y;\n",
        SUM_TO_N: "        return n * (n + 1) / 2;\n",
    },
    "php": {  # PHP's own strlen() makes HumanEval_23 unsolvable there (a redeclaration): fib instead
        GCD: "    return $b == 0 ? $a : greatest_common_divisor($b, $a % $b);\n}\n",
        FIB: "    return $n < 2 ? $n : fib($n - 1) + fib($n - 2);\n}\n",
        PALINDROME: "    return strrev($text) === $text;\n}\n",
        ADD: "    return $x + $y;\n}\n",
        SUM_TO_N: "    return intdiv($n * ($n + 1), 2);\n}\n",
    },
    "ts": {
        GCD: "  return b === 0 ? a : greatest_common_divisor(b, a % b);\n}\n",
        STRLEN: "  return string.length;\n}\n",
        PALINDROME: "  return text.split('').reverse().join('') === text;\n}\n",
        ADD: "  return x + y;\n}\n",
        SUM_TO_N: "  return n * (n + 1) / 2;\n}\n",
    },
    "js": {
        GCD: "  return b === 0 ? a : greatest_common_divisor(b, a % b);\n}\n",
        STRLEN: "  return string.length;\n}\n",
        PALINDROME: "  return text.split('').reverse().join('') === text;\n}\n",
        ADD: "  return x + y;\n}\n",
        SUM_TO_N: "  return n * (n + 1) / 2;\n}\n",
    },
    "sh": {
        GCD: "    local a=$1 b=$2 t\n    while (( b != 0 )); do t=$b; b=$(( a % b )); a=$t; done\n    echo $a\n",
        STRLEN: "    echo ${#1}\n",
        PALINDROME: (
            '    local s=$1 r=""\n    for (( i=${#s}-1; i>=0; i-- )); do r+=${s:i:1}; done\n'
            '    [[ $s == "$r" ]] && echo true || echo false\n'
        ),
        ADD: "    echo $(( $1 + $2 ))\n",
        SUM_TO_N: "    echo $(( $1 * ($1 + 1) / 2 ))\n",
    },
}
