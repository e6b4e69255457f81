"""Writes the two notebooks (run from the repository root): python examples/make_notebooks.py."""
import nbformat as nbf, sys
def nb(cells):
    n = nbf.v4.new_notebook()
    n.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                  "language_info": {"name": "python"}}
    n.cells = [nbf.v4.new_markdown_cell(c[1]) if c[0] == "md" else nbf.v4.new_code_cell(c[1]) for c in cells]
    return n

SETUP = '''import numpy as np
import symloss

try:  # torch is only the second opinion; every number below is computed by symloss
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None'''

INPUTS = '''z = np.array([-1.7723, -1.5965, 0.8863])  # the seed notebook's logits
y = np.array([0.0, 1.0, 0.0])              # and its targets
d = symloss.derive("bce")                  # BCELoss(Sigmoid(z), y)
ex = d.example(z, y)
ex'''

CHECK_NUMBERS = '''assert ex.value("Link") == "[0.1453, 0.1685, 0.7081]"             # σ(z)
assert ex.value("Per-element loss") == "[0.1570, 1.7810, 1.2314]"  # ℓᵢ
assert ex.value("Reduction") == "1.0565"                          # (1/n) Σ ℓᵢ
assert ex.value("Product") == "[0.1453, -0.8315, 0.7081]"          # ∂ℓᵢ/∂zᵢ = σ(zᵢ) − yᵢ
assert ex.value("Reduced gradient") == "[0.0484, -0.2772, 0.2360]" # ∂L/∂zᵢ = (σ(zᵢ) − yᵢ)/3
if torch is not None:  # torch agrees with every number
    zt = torch.tensor(z, requires_grad=True)
    yt = torch.tensor(y)
    out = torch.nn.BCELoss()(torch.sigmoid(zt), yt)
    out.backward()
    assert np.allclose(ex.values("Link"), torch.sigmoid(zt).detach().numpy(), rtol=1e-12)
    assert np.isclose(ex.values("Reduction"), out.item(), rtol=1e-12)
    per_element = torch.nn.BCELoss(reduction="none")(torch.sigmoid(zt), yt)
    assert np.allclose(ex.values("Per-element loss"), per_element.detach().numpy(), rtol=1e-12)
    assert np.allclose(ex.values("Reduced gradient"), zt.grad.numpy(), rtol=1e-9)'''

PRODUCT = '''product = next(s for s in d.steps if s.title == "Product")
assert product.checked  # SymPy checked every "=" of this chain
product.rhs'''

R1 = '''r = symloss.relate("bce_with_logits", "binary_cross_entropy")
assert r.proved
r'''
R1CHECK = '''if torch is not None:
    zt, yt = torch.tensor(z), torch.tensor(y)
    a = torch.nn.BCEWithLogitsLoss()(zt, yt)
    b = torch.nn.BCELoss()(torch.sigmoid(zt), yt)
    assert np.isclose(a.item(), b.item(), rtol=1e-12)
    assert np.isclose(symloss.derive("bce_with_logits").loss_fn(z, y), a.item(), rtol=1e-12)'''

R2 = '''r = symloss.relate("bce", "ce")
assert r.proved
r'''
R2CHECK = '''p = ex.values("Link")
H = -(y * np.log(p) + (1 - y) * np.log(1 - p))  # H((y, 1 − y), (p, 1 − p)) by hand
assert np.allclose(H, ex.values("Per-element loss"), rtol=1e-12)
# softmax cross-entropy of the two logits (0, z) with targets (1 − y, y) is BCE-with-logits of z
two = np.stack([np.zeros_like(z), z], axis=1)
probs = np.stack([1 - y, y], axis=1)
ce = symloss.derive("ce")
assert np.isclose(ce.loss_fn(two, probs), ex.values("Reduction"), rtol=1e-12)
if torch is not None:
    t = F.cross_entropy(torch.tensor(two), torch.tensor(probs))
    assert np.isclose(t.item(), ex.values("Reduction"), rtol=1e-12)'''

R3 = '''r = symloss.relate("ce", "kl_div")
assert r.proved
r'''

EN = [
 ("md", "# BCE from scratch, with symloss\n\nThe seed notebook's notes on `BCELoss`, `BCEWithLogitsLoss` and cross-entropy, retold: every formula is derived by SymPy, every `=` is checked, every number is computed by symloss, and torch is asked for a second opinion where torch is right (the `assert` cells)."),
 ("code", SETUP),
 ("md", "## 1. How BCELoss computes\n\n- input: the network's output before the sigmoid (one number per sample)\n- step 1: the sigmoid turns the logit into $p = P(\\text{class}=1 \\mid x)$\n- step 2: $\\ell_i=-\\left(y_i\\log p_i + (1-y_i)\\log (1-p_i)\\right)$\n- step 3: the mean $\\frac1n\\sum_i\\ell_i$\n\nThe worked example prints each step with its numbers beside its symbols:"),
 ("code", INPUTS),
 ("code", CHECK_NUMBERS),
 ("md", "### 1.1 backward\n\nThe product step is the line the notebook writes by hand: $-\\left(\\frac{y}{p} - \\frac{1-y}{1-p}\\right)p(1-p) = -\\left(y(1-p) - (1-y)p\\right) = p - y$, so $\\frac{\\partial \\ell_i}{\\partial z_i} = \\sigma(z_i) - y_i$ and, for the mean of three, $\\frac{\\partial L}{\\partial z_i} = \\frac13\\left(\\sigma(z_i) - y_i\\right)$."),
 ("code", PRODUCT),
 ("md", "### 1.2 BCELoss vs. BCEWithLogitsLoss\n\nBCEWithLogitsLoss = sigmoid + BCELoss, proved from the two losses' declarations:"),
 ("code", R1),
 ("code", R1CHECK),
 ("md", "### 1.3 Cross-entropy\n\n$$H(p,q)=-\\sum_x p(x)\\log q(x)$$\n\nmeasures the distance between two distributions: here $(y_i, 1-y_i)$ against $(p_i, 1-p_i)$.\n\n### 1.4 BCELoss vs. CrossEntropyLoss\n\nOne output vs. $C$ outputs, sigmoid vs. softmax, both cross-entropy: the sigmoid is the two-class softmax, so softmax cross-entropy with $C = 2$ is BCE-with-logits of $z_2 - z_1$."),
 ("code", R2),
 ("code", R2CHECK),
 ("md", "Cross-entropy is the target's entropy plus the KL divergence, $\\mathrm{CE} = H(y) + \\mathrm{KL}(y \\| p)$; the entropy does not depend on the logits, so `kl_div` through `log_softmax` has cross-entropy's gradient:"),
 ("code", R3),
]

ZH = [
 ("md", "# 从零理解 BCE（用 symloss 重写）\n\n种子笔记中关于 `BCELoss`、`BCEWithLogitsLoss` 与交叉熵的笔记，这里重新讲一遍：每个公式由 SymPy 推导，每个等号都经过验证，每个数都由 symloss 计算；在 torch 正确的地方，再请 torch 复核（`assert` 单元）。"),
 ("code", SETUP.replace("# torch is only the second opinion; every number below is computed by symloss", "# torch 只负责复核；下面的每个数都由 symloss 计算")),
 ("md", "## 1. BCELoss 计算过程\n\n- 输入：未经过 sigmoid 的网络输出（一个样本对应一维的输出）\n- 第一步：计算 sigmoid，把 logit 转换为 $p = P(\\text{class}=1 \\mid x)$ 的概率\n- 第二步：计算 $\\ell_i=-\\left(y_i\\log p_i + (1-y_i)\\log (1-p_i)\\right)$\n- 第三步：计算均值 $\\frac1n\\sum_i\\ell_i$\n\n算例在每个符号旁边给出它的数值："),
 ("code", INPUTS.replace("ex = d.example(z, y)\nex", "ex = d.example(z, y)\nex.show(\"zh\")").replace("# the seed notebook's logits", "# 种子笔记中的 logit").replace("# and its targets", "# 以及目标").replace("# BCELoss(Sigmoid(z), y)", "# BCELoss(Sigmoid(z), y)")),
 ("code", CHECK_NUMBERS.replace("# torch agrees with every number", "# torch 的每个数都一致")),
 ("md", "### 1.1 反向传播\n\n乘积这一步就是笔记中手写的那一行：$-\\left(\\frac{y}{p} - \\frac{1-y}{1-p}\\right)p(1-p) = -\\left(y(1-p) - (1-y)p\\right) = p - y$，所以 $\\frac{\\partial \\ell_i}{\\partial z_i} = \\sigma(z_i) - y_i$；对三个数取均值时 $\\frac{\\partial L}{\\partial z_i} = \\frac13\\left(\\sigma(z_i) - y_i\\right)$。"),
 ("code", PRODUCT.replace('# SymPy checked every "=" of this chain', "# 这条等式链的每个等号都经 SymPy 验证")),
 ("md", "### 1.2 BCELoss 与 BCEWithLogitsLoss\n\nBCEWithLogitsLoss = sigmoid + BCELoss，由两个损失的声明证明："),
 ("code", R1.rsplit("\n", 1)[0] + "\nr.show(\"zh\")"),
 ("code", R1CHECK),
 ("md", "### 1.3 交叉熵\n\n$$H(p,q)=-\\sum_x p(x)\\log q(x)$$\n\n度量两个概率分布的距离：这里是 $(y_i, 1-y_i)$ 与 $(p_i, 1-p_i)$。\n\n### 1.4 BCELoss 与 CrossEntropyLoss\n\n二分类与多分类，单输出与多输出，sigmoid 与 softmax，都用交叉熵计算损失：sigmoid 就是两类的 softmax，所以 $C = 2$ 的 softmax 交叉熵就是 $z_2 - z_1$ 的 BCE-with-logits。"),
 ("code", R2.rsplit("\n", 1)[0] + "\nr.show(\"zh\")"),
 ("code", R2CHECK.replace("# H((y, 1 − y), (p, 1 − p)) by hand", "# 手算 H((y, 1 − y), (p, 1 − p))").replace("# softmax cross-entropy of the two logits (0, z) with targets (1 − y, y) is BCE-with-logits of z", "# 两个 logit (0, z) 对目标 (1 − y, y) 的 softmax 交叉熵，就是 z 的 BCE-with-logits")),
 ("md", "交叉熵等于目标的熵加上 KL 散度，$\\mathrm{CE} = H(y) + \\mathrm{KL}(y \\| p)$；熵与 logit 无关，所以经过 `log_softmax` 的 `kl_div` 与交叉熵的梯度相同："),
 ("code", R3.rsplit("\n", 1)[0] + "\nr.show(\"zh\")"),
]
nbf.write(nb(EN), "examples/bce_from_scratch.en.ipynb")
nbf.write(nb(ZH), "examples/bce_from_scratch.zh.ipynb")
