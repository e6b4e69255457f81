"""中文：symloss 输出的每个标题和句子（见 :mod:`symloss.words`）；数学式与英文版完全相同。

``WORDS`` 与 :mod:`.en` 的键一一对应；``SENTENCES`` 以目录（catalog）中声明的英文句子为键，
给出它的中文（如 gettext 以 ``msgid`` 为键）。
"""

from __future__ import annotations

WORDS: dict[str, str] = {
    # ---- 步骤标题
    "title.link": "联系函数",
    "title.definition": "定义",
    "title.per_element_loss": "逐元素损失",
    "title.reduction": "归约",
    "title.derivative": "求导",
    "title.canonical": "标准形式",
    "title.evaluated": "数值计算形式",
    "title.chain_rule": "链式法则",
    "title.outer": "外层因子",
    "title.inner": "内层因子",
    "title.product": "乘积",
    "title.gradient": "梯度",
    "title.reduced_gradient": "归约后的梯度",
    "title.wrt": "对 {name} 求导",
    "title.kink": "不可导点",
    "title.second_derivative": "二阶导数",
    "title.closed_form": "闭式",
    "title.hvp": "Hessian 向量积",
    # ---- 步骤说明
    "why.reduction_sum": "reduction='sum' 把逐元素损失相加。",
    "why.reduction_none": "reduction='none' 为每个元素保留一个损失。",
    "why.derivative": "用 sympy.diff 对逐元素损失求导，再化简。",
    "why.assuming": "{why}假设{facts}。",
    "why.kernel_form": "NumPy 内核实际计算的形式。",
    "why.chain_rule_class": "ℓ 通过每个 pₖ 依赖于 zᵢ。",
    "why.chain_rule": "ℓ 通过 p 依赖于 z。",
    "why.outer": "用 sympy.diff 对损失关于预测值求导。",
    "why.inner": "{link} 的导数，由每个基本函数自带（fdiff）。",
    "why.product": "把两个因子相乘，外层因子的每一项与内层因子约分，再化简；与 sympy.diff 直接对 z 求 ℓ 的导数相等。",
    "why.gradient_none": "reduction='none' 时每个元素的梯度就是它自己的梯度（用全 1 做 backward）。",
    "why.reduced_mean": "每个 ℓₘ 只依赖于它自己的输入，所以归约后的梯度是逐元素梯度除以均值的分母。",
    "why.reduced_sum": "每个 ℓₘ 只依赖于它自己的输入，所以归约后的梯度就是逐元素梯度。",
    "why.wrt": "用 sympy.diff 对逐元素损失关于 {name} 求导并化简。{why}",
    "why.first_derivative": "一阶导数：由 sympy.diff 求出并化简（一阶）。",
    "why.second": "用 sympy.diff 对梯度再求导，然后化简。",
    "why.second_dirac": "用 sympy.diff 对梯度再求导；去掉不可导点处的 Dirac δ（几乎处处的导数，也就是 autograd 二次 backward 的结果），然后化简。",
    "why.second_class": "用 sympy.diff 对梯度关于第二个 logit {z2} 求导（j 是第二个类别下标），然后化简。",
    "why.second_class_dirac": "用 sympy.diff 对梯度关于第二个 logit {z2} 求导（j 是第二个类别下标）；去掉不可导点处的 Dirac δ（几乎处处的导数，也就是 autograd 二次 backward 的结果），然后化简。",
    "why.no_closed_form": "这个 Hessian 没有声明闭式，因此没有可证明的对象；上面推导出的形式就是结果。",
    "why.hvp_class_mean": "Hessian 向量积把第二个下标与方向 v 缩并；每个样本的块相互独立，所以归约后损失的 HVP 就是逐样本的这个量，再除以均值的分母。",
    "why.hvp_class_sum": "Hessian 向量积把第二个下标与方向 v 缩并；每个样本的块相互独立，所以归约后损失的 HVP 就是逐样本的这个量。",
    "why.hvp_class_none": "Hessian 向量积把第二个下标与方向 v 缩并；每个样本的块相互独立，所以归约后损失的 HVP 就是逐样本的这个量（reduction='none'：求和的 HVP，即用全 1 做 backward）。",
    "why.hvp_mean": "每个元素的损失只依赖于它自己的输入，所以归约后损失的 Hessian 是对角的，它与方向 v 的乘积逐元素计算，再除以均值的分母。",
    "why.hvp_sum": "每个元素的损失只依赖于它自己的输入，所以归约后损失的 Hessian 是对角的，它与方向 v 的乘积逐元素计算。",
    "why.hvp_none": "每个元素的损失只依赖于它自己的输入，所以归约后损失的 Hessian 是对角的，它与方向 v 的乘积逐元素计算（reduction='none'：求和的 HVP，即用全 1 做 backward）。",
    # ---- 渲染
    "status.definition": "定义",
    "status.checked": "已由 SymPy 验证",
    "status.not_proved": "未证明",
    "verdict.proved": "已证明",
    "verdict.not_proved": "未证明",
    "verdict.no_closed_form": "已推导；未声明闭式，因此未证明",
    "result": "结果（SymPy {verdict}）：",
    "second_derivative": "二阶导数",
    "gradient": "梯度",
    "heading.second_derivative": "{title}：二阶导数",
    "document.result": "{what}与其闭式相等，{verdict}：",
    "colon": "：",
    "where": "其中",
    # ---- 关系
    "relation.title": "{left} 与 {right}",
    "relation.proved": "已证明：SymPy 把每个差都化简为 0",
    "relation.not_proved": "未证明：SymPy 没能把每个差都化简为 0",
    "relation.verdict": "关系（{verdict}）：",
    "relation.unknown": "{a} 与 {b} 之间没有已知的关系；已有的关系：{known}",
    "relation.options": "{slug} 不接受选项，却收到了 {given}",
    "title.declared": "声明",
    "title.substitute": "代入",
    "title.equal": "相等",
    "title.gradients": "梯度",
    "title.two_classes": "两个类别",
    "title.softmax_is_sigmoid": "sigmoid 就是两类的 softmax",
    "title.entropy": "熵",
    "title.kl": "KL 散度",
    "title.labels": "标签 ±1",
    "why.declared": "{name} 的逐元素损失，与它的声明一致。",
    "why.declared_in": "{name} 的逐元素损失，用它的预测值 {var} 写出，与声明一致。",
    "why.equal": "两边之差化简为 0（SymPy）。",
    "why.equal_clamp": "两边之差化简为 0（SymPy），前提是 torch 把每个 log 截断在 −100 的操作不起作用，即 log p > −100。",
    "why.gradient_equal": "用 sympy.diff 对两边关于 {var} 求导；差化简为 0。",
    "why.substitute_sigmoid": "把 sigmoid 给出的概率 p = σ(z) 代入 BCE。",
    "why.substitute_log_softmax": "把对数概率 x = log_softmax(z) 代入 nll_loss。",
    "why.two_classes": "两个类别：目标 (1 − y, y) 对预测 (1 − p, p)，正如笔记中把 (yᵢ, 1 − yᵢ) 与它的预测相比较。",
    "why.softmax_is_sigmoid": "C = 2 时，(z₁, z₂) 的 softmax 就是两个 logit 之差的 sigmoid。",
    "why.ce_two_classes": "C = 2 的 softmax 交叉熵就是 z₂ − z₁ 对 y₂ 的 BCE-with-logits（目标是一个分布，y₁ = 1 − y₂）；log σ = −softplus(−·)。",
    "why.ce_two_gradients": "用 sympy.diff 对两类交叉熵求导：得到 BCE-with-logits 在 z₂ − z₁ 处的梯度 σ(z₂ − z₁) − y₂，符号取决于这个 logit 在 z₂ − z₁ 中的符号。",
    "why.entropy": "目标的熵，即 y 与自身的交叉熵（0·log 0 = 0）。",
    "why.kl": "对数概率 log_softmax(z) 相对 y 的 kl_div，对所有类别求和（0·log 0 = 0）。",
    "why.ce_entropy_kl": "交叉熵等于目标的熵加上 KL(y‖p)；两边之差化简为 0。",
    "why.entropy_free": "熵与 logit 无关。",
    "why.kl_gradient": "所以对于目标分布（Σₖ yₖ = 1），cross_entropy 的梯度与经过 log_softmax 的 kl_div 的梯度相同。",
    "why.soft_margin": "soft_margin_loss 就是间隔 y z 对标签 1 的 BCE-with-logits。",
    "why.soft_margin_labels": "标签 y = {value} 时，soft_margin_loss 就是 z 对 (1 + y)/2 ∈ {{0, 1}} 的 BCE-with-logits。",
    "why.soft_margin_gradient": "用 sympy.diff 对两边关于 z 求导：链式法则带出因子 y。",
    "why.focal": "γ = 0 时调制因子 (1 − p_t)^γ 等于 1：focal loss 就是以 α_t = α y + (1 − α)(1 − y) 加权的 BCE-with-logits。",
    "why.multilabel": "multilabel_soft_margin_loss 是每个类别的 logit 的 BCE-with-logits 在 C 个类别上的平均。",
    "why.multilabel_gradient": "用 sympy.diff 对 xᵢ 求导：只有第 i 类的项依赖于 xᵢ，所以梯度是 BCE-with-logits 的梯度除以 C。",
    "relation.bce_with_logits-bce": "BCEWithLogitsLoss 就是 sigmoid 之后的 BCELoss：BCE-with-logits(z, y) = BCE(σ(z), y)。",
    "relation.bce-ce": "二元交叉熵是两个结果的交叉熵 H，而 C = 2 的 softmax 交叉熵是 z₂ − z₁ 的 BCE-with-logits：sigmoid 就是两类的 softmax。",
    "relation.ce-kl_div": "交叉熵等于目标的熵加上 KL(y‖p)：CE = H(y) + KL(y‖p)，所以两者对 logit 的梯度相同。",
    "relation.nll_loss-ce": "cross_entropy 就是 log_softmax 之后的 nll_loss：CE(z, y) = NLL(log_softmax(z), y)。",
    "relation.soft_margin-bce_with_logits": "soft_margin_loss(z, y) 等于 BCE-with-logits(y z, 1)；对于标签 ±1，它是 z 对 (1 + y)/2 的 BCE-with-logits。",
    "relation.focal-bce_with_logits": "γ = 0 的 sigmoid_focal_loss 就是以 α_t 加权的 BCE-with-logits。",
    "relation.multilabel-bce_with_logits": "multilabel_soft_margin_loss 是 BCE-with-logits 在类别上的平均。",
    # ---- 算例
    "example.inputs": "数据",
    "example.inputs_why": "本例的数组；下面的每个数都由 symloss 计算。",
    # ---- symloss list
    "list.losses": "损失函数：",
    "list.aliases": "别名：",
    "list.relations": "关系（symloss relate A B）：",
}

#: 目录中声明的英文句子 → 中文。
SENTENCES: dict[str, str] = {
    'q′ as evaluated: (1 − 2y) σ(z) σ(−z), one factor 1 − 2y': '计算时的 q′：(1 − 2y) σ(z) σ(−z)，1 − 2y 为一个因子',
    'q″ as evaluated, with σ(−z) − σ(z) as −tanh(z/2)': '计算时的 q″，其中 σ(−z) − σ(z) 写成 −tanh(z/2)',
    "Evaluated over one denominator guarded like the gradient's, w ((p − y)² + y(1 − y)) / max(p(1 − p), 10⁻¹²)², finite at p = 0 and 1; the numerator p² − 2py + y written as a sum of two terms ≥ 0, which cannot cancel, each over the square (((p − y)/c)² stays normal where (p − y)² alone underflows).": '在与梯度同样加了保护的公分母上计算，w ((p − y)² + y(1 − y)) / max(p(1 − p), 10⁻¹²)²，在 p = 0 和 1 处有限；分子 p² − 2py + y 写成两个 ≥ 0 的项之和，不会相消，每一项各自除以该平方（((p − y)/c)² 在 (p − y)² 单独下溢时仍是正规数）。',
    'Evaluated as σ(z) σ(−z), rounded once from a double-double value: both factors keep their relative accuracy, so the variance does not round to 0 (or lose digits) where σ(z) → 1, as σ(z)(1 − σ(z)) does.': '按 σ(z) σ(−z) 计算，由双倍双精度（double-double）值只舍入一次：两个因子都保持相对精度，所以在 σ(z) → 1 处方差不会像 σ(z)(1 − σ(z)) 那样舍入为 0（或丢失有效数字）。',
    'Evaluated as (Σₖ aₖ) pᵢ (δᵢⱼ ((1 − pᵢ) + pᵢ) − pⱼ), which is pᵢ(1 − pᵢ) on the diagonal with 1 − pᵢ summed over the other classes: it keeps its digits where pᵢ → 1.': '按 (Σₖ aₖ) pᵢ (δᵢⱼ ((1 − pᵢ) + pᵢ) − pⱼ) 计算，在对角线上即 pᵢ(1 − pᵢ)，其中 1 − pᵢ 由其余类别求和得到：在 pᵢ → 1 处保持有效数字。',
    'Evaluated as exp(z) − y rounded once from a double-double value: it keeps its digits next to exp(z) = y, where a float64 difference cancels.': '按 exp(z) − y 计算，由双双精度（double-double）值只舍入一次：在 exp(z) = y 附近（float64 的差会相消）保持有效数字。',
    'Evaluated as 1 − y/(z + ε) rounded once from a double-double value: it keeps its digits next to z + ε = y, where a float64 difference cancels.': '按 1 − y/(z + ε) 计算，由双双精度（double-double）值只舍入一次：在 z + ε = y 附近（float64 的差会相消）保持有效数字。',
    'Evaluated per label: for y = 0 (y = 1) 1 − p_t is σ(s) with s = z (s = −z), and its power σ(s)^γ is differentiated as γ σ(s)^γ σ(−s) (sigmoid_pow, evaluated as e^(−γ softplus(−s))): no σ(s)^(γ−1) that overflows while σ(s)σ(−s) underflows, whose product is NaN; each 1 − σ(x) is σ(−x).': '按标签分别计算：y = 0（y = 1）时 1 − p_t 为 σ(s)，s = z（s = −z），其幂 σ(s)^γ 的导数取 γ σ(s)^γ σ(−s)（sigmoid_pow，按 e^(−γ softplus(−s)) 计算）：不会出现 σ(s)^(γ−1) 上溢而 σ(s)σ(−s) 下溢、乘积为 NaN 的情况；每个 1 − σ(x) 都写成 σ(−x)。',
    "A soft label takes the derived form with each q^(γ−k) (q = 1 − p_t) written q^γ times ratios of q's derivatives to q (finite where q is subnormal and q^(γ−k) overflows), 1 − 2y kept as a factor and σ(z) − y in double-double.": '软标签使用推导出的形式，其中每个 q^(γ−k)（q = 1 − p_t）写作 q^γ 乘以 q 的各阶导数与 q 之比（在 q 为次正规数、q^(γ−k) 上溢时仍有限），1 − 2y 保留为一个因子，σ(z) − y 用双双精度计算。',
    "1 for a similar pair (y = 1); for a dissimilar pair (y = −1), −1 inside the margin and 0 outside.": "相似对 (y = 1) 为 1；不相似对 (y = −1) 在间隔内为 −1，在间隔外为 0。",
    "1 on the quadratic piece, 0 on the linear pieces.": "二次段上为 1，线性段上为 0。",
    "1/β on the quadratic piece, 0 on the linear pieces.": "二次段上为 1/β，线性段上为 0。",
    "A quadratic has a constant second derivative.": "二次函数的二阶导数是常数。",
    "A sum of rank-one terms, one per violated margin: 2 (w_t / C) Σ_(k≠t) 1[u_k > 0] (e_k − e_t)(e_k − e_t)ᵀ, written with the one-hot y as δ_ik − y_i.": "秩一项之和，每个被违反的间隔一项：2 (w_t / C) Σ_(k≠t) 1[u_k > 0] (e_k − e_t)(e_k − e_t)ᵀ，用 one-hot 的 y 写成 δ_ik − y_i。",
    "torch has no double backward for multi_margin_loss; the HVP is checked against finite differences of torch's gradient.": "torch 的 multi_margin_loss 没有二次 backward；HVP 用 torch 梯度的有限差分来检验。",
    "Absolute error of the prediction z against the target y.": "预测 z 相对目标 y 的绝对误差。",
    "An average of C independent Bernoulli losses with the logit link: each class's gradient is its own σ(xᵢ) − yᵢ, weighted and divided by C.": "C 个独立的、采用 logit 联系函数的 Bernoulli 损失的平均：每个类别的梯度是它自己的 σ(xᵢ) − yᵢ，加权后除以 C。",
    "At z = margin (y = −1) the derivative jumps from −1 (inside the margin) to 0: every value in [−1, 0] is a subgradient.": "在 z = margin (y = −1) 处导数从 −1（间隔以内）跳到 0：[−1, 0] 中的每个值都是次梯度。",
    "symloss counts the hinge as active (z ≤ margin), −1, the left side, as torch 2.13 does; torch 2.14 returns 0, the right side.": "symloss 把 hinge 视为激活（z ≤ margin），取左侧的 −1，与 torch 2.13 相同；torch 2.14 返回右侧的 0。",
    "At z = y, |z − y| has no derivative; torch's backward takes sign(0) = 0, and so does sympy's sign.": "在 z = y 处 |z − y| 不可导；torch 的 backward 取 sign(0) = 0，sympy 的 sign 也一样。",
    "The second derivative there is 0 too.": "那里的二阶导数也是 0。",
    "At |z − y| = β the first derivative is continuous (±1 from both sides); torch takes the linear side for the second derivative, 0, as the strict |d| < β does.": "在 |z − y| = β 处一阶导数连续（两侧都是 ±1）；二阶导数 torch 取线性一侧的 0，与严格不等式 |d| < β 一致。",
    "At |z − y| = δ the first derivative is continuous (±δ); torch takes the linear side for the second derivative, 0, as the strict |d| < δ does.": "在 |z − y| = δ 处一阶导数连续（±δ）；二阶导数 torch 取线性一侧的 0，与严格不等式 |d| < δ 一致。",
    "At −y(z₁ − z₂) + margin = 0 (y = 1) the derivative jumps from −1 to 0: every value in [−1, 0] is a subgradient.": "在 −y(z₁ − z₂) + margin = 0 (y = 1) 处导数从 −1 跳到 0：[−1, 0] 中的每个值都是次梯度。",
    "At −y(z₁ − z₂) + margin = 0 (y = −1) the derivative jumps from 0 to 1: every value in [0, 1] is a subgradient.": "在 −y(z₁ − z₂) + margin = 0 (y = −1) 处导数从 0 跳到 1：[0, 1] 中的每个值都是次梯度。",
    "symloss counts the hinge as active (≥ 0), −y = −1, as torch 2.13 does; torch 2.14 returns 0.": "symloss 把 hinge 视为激活（≥ 0），取 −y = −1，与 torch 2.13 相同；torch 2.14 返回 0。",
    "symloss counts the hinge as active, −y = 1, as torch 2.13 does; torch 2.14 returns 0.": "symloss 把 hinge 视为激活，取 −y = 1，与 torch 2.13 相同；torch 2.14 返回 0。",
    "Bernoulli negative log-likelihood with its canonical (logit) link: the gradient with respect to the natural parameter z is mean minus target, σ(z) − y.": "采用标准（logit）联系函数的 Bernoulli 负对数似然：对自然参数 z 的梯度是均值减目标，σ(z) − y。",
    "With pos_weight w₊ the positive term is scaled by w₊.": "有 pos_weight w₊ 时，正类项乘以 w₊。",
    "Binary cross-entropy of a probability p (torch clamps each log at −100).": "概率 p 的二元交叉熵（torch 把每个 log 截断在 −100）。",
    "Binary cross-entropy of logits, sigmoid fused in (BCEWithLogitsLoss).": "logit 的二元交叉熵，sigmoid 融合在内（BCEWithLogitsLoss）。",
    "Binary cross-entropy of probabilities; link='sigmoid' takes logits (BCELoss∘Sigmoid).": "概率的二元交叉熵；link='sigmoid' 时输入是 logit（BCELoss∘Sigmoid）。",
    "Categorical negative log-likelihood with its canonical (softmax) link: the gradient with respect to the natural parameters z is mean minus target, softmax(z)ᵢ − yᵢ.": "采用标准（softmax）联系函数的类别分布负对数似然：对自然参数 z 的梯度是均值减目标，softmax(z)ᵢ − yᵢ。",
    "With class weights the target side is weighted: (Σₖ wₖ yₖ) pᵢ − wᵢ yᵢ, which is wₜ (pᵢ − yᵢ) for a hard label t.": "有类别权重时目标一侧被加权：(Σₖ wₖ yₖ) pᵢ − wᵢ yᵢ，对硬标签 t 即 wₜ (pᵢ − yᵢ)。",
    "Cross-entropy of the target distribution y against p = softmax(z); for a class index t, y is one-hot at t.": "目标分布 y 相对 p = softmax(z) 的交叉熵；类别下标为 t 时，y 是在 t 处为 1 的 one-hot 向量。",
    "log softmax is the form evaluated.": "数值上计算的是 log softmax。",
    "Diagonal: class i's loss depends on xᵢ alone; each entry is the Bernoulli variance σ(xᵢ)(1 − σ(xᵢ)), weighted and divided by C.": "对角阵：第 i 类的损失只依赖于 xᵢ；每个元素是 Bernoulli 方差 σ(xᵢ)(1 − σ(xᵢ))，加权后除以 C。",
    "Each log term contributes the square of its reciprocal.": "每个 log 项贡献其倒数的平方。",
    "Each violated margin u_k = margin − x_t + x_k > 0 (k ≠ t) pushes x_k up and x_t down by p·max(0, u_k)^(p−1), weighted by w_t and divided by C.": "每个被违反的间隔 u_k = margin − x_t + x_k > 0 (k ≠ t) 以 p·max(0, u_k)^(p−1) 推高 x_k、压低 x_t，乘以 w_t 并除以 C。",
    "At a kink (u_k = 0) torch's backward counts the term as inactive, 0, and so does the step 1[u > 0] here (tested at the kink).": "在不可导点 (u_k = 0) 处，torch 的 backward 把该项视为未激活，取 0；这里的阶跃函数 1[u > 0] 也一样（已在该点测试）。",
    "Evaluated as pᵢ Σₖ aₖ − aᵢ (aₖ the weighted target) rounded once from pairs: (eᵢ Σₖ aₖ − aᵢ Σₖ eₖ)/Σₖ eₖ with eₖ = exp(zₖ − max z), for a hard label and a distribution alike; nothing is lost where pᵢ → 1 or pᵢ ≈ aᵢ/Σₖ aₖ.": "按 pᵢ Σₖ aₖ − aᵢ 计算（aₖ 是加权后的目标），由一对浮点数（pair）只舍入一次：(eᵢ Σₖ aₖ − aᵢ Σₖ eₖ)/Σₖ eₖ，其中 eₖ = exp(zₖ − max z)；硬标签与概率分布同样处理；在 pᵢ → 1 或 pᵢ ≈ aᵢ/Σₖ aₖ 处都不丢失有效数字。",
    "Evaluated as the derivative of the softplus form: for a hard label one term vanishes, so σ(z) − 1 is computed as −σ(−z), with no cancellation.": "按 softplus 形式的导数计算：对硬标签有一项为零，所以 σ(z) − 1 按 −σ(−z) 计算，没有相消。",
    "Evaluated as torch does, w (p − y) / max(p(1 − p), 10⁻¹²), finite at p = 0 and 1.": "与 torch 一样按 w (p − y) / max(p(1 − p), 10⁻¹²) 计算，在 p = 0 和 1 处有限。",
    "Evaluated as −y σ(−y z): no 1 − σ cancellation where y z is large.": "按 −y σ(−y z) 计算：y z 很大时没有 1 − σ 的相消。",
    "Evaluated over one denominator guarded like the gradient's, w (p² − 2py + y) / max(p(1 − p), 10⁻¹²)², finite at p = 0 and 1.": "在与梯度同样加了保护的公分母上计算，w (p² − 2py + y) / max(p(1 − p), 10⁻¹²)²，在 p = 0 和 1 处有限。",
    "Gaussian negative log-likelihood of the target y with mean z and variance σ², (log σ² + (z − y)²/σ²)/2 + log(2π)/2 (full=True); torch clamps σ² at ε without gradient (a clamp under no_grad), so the derivatives are taken at max(σ², ε) as if unclamped.": "目标 y 在均值 z、方差 σ² 下的高斯负对数似然，(log σ² + (z − y)²/σ²)/2 + log(2π)/2（full=True）；torch 在不带梯度的情况下把 σ² 截断在 ε（no_grad 下的 clamp），所以导数在 max(σ², ε) 处按未截断计算。",
    "Gaussian negative log-likelihood of the target y with mean z and variance σ², (log σ² + (z − y)²/σ²)/2; torch clamps σ² at ε without gradient (a clamp under no_grad), so the derivatives are taken at max(σ², ε) as if unclamped.": "目标 y 在均值 z、方差 σ² 下的高斯负对数似然，(log σ² + (z − y)²/σ²)/2；torch 在不带梯度的情况下把 σ² 截断在 ε（no_grad 下的 clamp），所以导数在 max(σ², ε) 处按未截断计算。",
    "Gaussian negative log-likelihood with a predicted variance (GaussianNLLLoss).": "带预测方差的高斯负对数似然（GaussianNLLLoss）。",
    "Half the precision times one minus the squared standardised residual.": "精度的一半乘以（1 减去标准化残差的平方）。",
    "Hinge embedding loss (HingeEmbeddingLoss) for targets ±1.": "目标为 ±1 的 hinge embedding 损失（HingeEmbeddingLoss）。",
    "Hinge embedding loss: z for y = 1, max(0, margin − z) for y = −1 (torch adds both terms for any other target value).": "Hinge embedding 损失：y = 1 时为 z，y = −1 时为 max(0, margin − z)（目标取其他值时 torch 把两项相加）。",
    "Huber loss (HuberLoss): quadratic within delta, delta-scaled linear outside.": "Huber 损失（HuberLoss）：delta 以内为二次，以外为按 delta 缩放的线性。",
    "Huber: (z − y)²/2 where |z − y| < δ, else δ(|z − y| − δ/2).": "Huber：|z − y| < δ 时为 (z − y)²/2，否则为 δ(|z − y| − δ/2)。",
    "In the probability p the gradient is prediction minus target over the Bernoulli variance p(1 − p); with link='sigmoid' that variance cancels.": "对概率 p 的梯度是（预测减目标）除以 Bernoulli 方差 p(1 − p)；用 link='sigmoid' 时这个方差被约掉。",
    "In the rate z itself (no canonical link) the gradient is 1 − y/(z + ε).": "直接对速率 z 求导（非标准联系函数），梯度是 1 − y/(z + ε)。",
    "KL divergence term of the target log-probability y against the log-probability z: exp(y)(y − z).": "目标对数概率 y 相对对数概率 z 的 KL 散度项：exp(y)(y − z)。",
    "KL divergence term of the target probability y against the log-probability z: y log y − y z (0 where y = 0).": "目标概率 y 相对对数概率 z 的 KL 散度项：y log y − y z（y = 0 处为 0）。",
    "KL divergence with log-probability input (KLDivLoss); reduction='batchmean'.": "输入为对数概率的 KL 散度（KLDivLoss）；reduction='batchmean'。",
    "Linear in the log-probabilities: minus the (weighted) one-hot target, −w_t δᵢₜ for a class index t.": "对对数概率是线性的：梯度是（加权的）one-hot 目标取负，对类别下标 t 为 −w_t δᵢₜ。",
    "Linear in the log-probability z: the gradient is minus the target probability.": "对对数概率 z 是线性的：梯度是目标概率取负。",
    "Linear in x: the Hessian is 0 (curvature enters only through a link).": "对 x 是线性的：Hessian 为 0（曲率只能通过联系函数引入）。",
    "Linear in z.": "对 z 是线性的。",
    "Logistic loss of the margin y·z for labels ±1 (SoftMarginLoss).": "标签为 ±1 时间隔 y·z 的 logistic 损失（SoftMarginLoss）。",
    "Margin ranking loss max(0, −y(z₁ − z₂) + margin) for y = ±1 (y = 1: z₁ should rank higher).": "间隔排序损失 max(0, −y(z₁ − z₂) + margin)，y = ±1（y = 1：z₁ 应排在前面）。",
    "Margin ranking loss of a pair of scores (MarginRankingLoss); gradients for both.": "一对分数的间隔排序损失（MarginRankingLoss）；两个输入都求梯度。",
    "Mean absolute error (L1Loss); sign(0) = 0 at the kink, as torch.": "平均绝对误差（L1Loss）；与 torch 一样，在不可导点取 sign(0) = 0。",
    "Mean squared error (MSELoss).": "均方误差（MSELoss）。",
    "Multi-class hinge loss (MultiMarginLoss), p = 1 or 2, margin, weight.": "多类 hinge 损失（MultiMarginLoss），p = 1 或 2，带 margin 和 weight。",
    "Evaluated as y (log y − z); where log y − z cancels, from a value good to 115 bits of the terms (a table of log r in three parts and log1p(m·r − 1) in double-double): it keeps its digits where z is the float nearest log y.": "按 y (log y − z) 计算；在 log y − z 发生相消的地方，它取自一个精确到各项的 115 位的值（log r 的表分三部分存放，log1p(m·r − 1) 以双双精度计算）：在 z 是最接近 log y 的浮点数时，它仍保留全部有效数字。",
    "The same sum, each margin u_k = margin − x_t + x_k rounded once from its exact value (next to a kink it cancels) and the target's own term 0 by itself, not subtracted from the sum of all classes.": "同一个和，每个间隔 u_k = margin − x_t + x_k 都从其精确值只舍入一次（在折点附近它会相消），目标类自身的项本身就是 0，而不是从所有类的和中减去。",
    "Multi-class margin loss with p = 1: (w_t / C) Σ_(k≠t) max(0, margin − x_t + x_k)^p, with x_t = Σ_m y_m x_m the target's score and w_t its weight (y one-hot; the factor 1 − y_k drops k = t).": "p = 1 的多类间隔损失：(w_t / C) Σ_(k≠t) max(0, margin − x_t + x_k)^p，其中 x_t = Σ_m y_m x_m 是目标类的分数，w_t 是它的权重（y 为 one-hot；因子 1 − y_k 去掉 k = t）。",
    "Multi-class margin loss with p = 2: (w_t / C) Σ_(k≠t) max(0, margin − x_t + x_k)^p, with x_t = Σ_m y_m x_m the target's score and w_t its weight (y one-hot; the factor 1 − y_k drops k = t).": "p = 2 的多类间隔损失：(w_t / C) Σ_(k≠t) max(0, margin − x_t + x_k)^p，其中 x_t = Σ_m y_m x_m 是目标类的分数，w_t 是它的权重（y 为 one-hot；因子 1 − y_k 去掉 k = t）。",
    "Multi-label one-versus-all logistic loss, averaged over classes (MultiLabelSoftMarginLoss).": "多标签一对多 logistic 损失，对类别取平均（MultiLabelSoftMarginLoss）。",
    "Negative log-likelihood of log-probabilities (NLLLoss); link='log_softmax' is cross_entropy.": "对数概率的负对数似然（NLLLoss）；link='log_softmax' 即 cross_entropy。",
    "Negative log-likelihood of the target class t given log-probabilities x: −w_t x_t, written as a sum against the one-hot y.": "给定对数概率 x 时目标类别 t 的负对数似然：−w_t x_t，写成与 one-hot 的 y 的求和。",
    "Per sample, the mean over the C classes of the (weighted) binary cross-entropy of p = σ(x) against the multi-hot target y; log σ = −softplus(−x) is evaluated.": "逐样本地，对 C 个类别取 p = σ(x) 相对 multi-hot 目标 y 的（加权）二元交叉熵的平均；数值上计算 log σ = −softplus(−x)。",
    "Per-element binary cross-entropy of p = σ(z); log σ(z) = −softplus(−z) is the form evaluated.": "p = σ(z) 的逐元素二元交叉熵；数值上计算的是 log σ(z) = −softplus(−z)。",
    "Piecewise linear (p = 1): 0 away from the kinks.": "分段线性 (p = 1)：在不可导点以外为 0。",
    "Piecewise linear: 0 away from the kink.": "分段线性：在不可导点以外为 0。",
    "Piecewise linear: the second derivative is 0 away from the kink.": "分段线性：在不可导点以外二阶导数为 0。",
    "Poisson negative log-likelihood (PoissonNLLLoss), log or rate input.": "泊松负对数似然（PoissonNLLLoss），输入为对数速率或速率。",
    "Poisson negative log-likelihood of the rate z; torch adds ε inside the log.": "速率 z 的泊松负对数似然；torch 在 log 内加上 ε。",
    "Poisson negative log-likelihood of the rate λ = exp(z).": "速率 λ = exp(z) 的泊松负对数似然。",
    "With full=True torch adds Stirling's approximation of log(y!), y log y − y + log(2πy)/2, only where y > 1; it does not depend on the input.": "full=True 时 torch 只在 y > 1 处加上 log(y!) 的 Stirling 近似 y log y − y + log(2πy)/2；它与输入无关。",
    "Poisson negative log-likelihood with its canonical (log) link: the gradient with respect to the natural parameter z = log λ is mean minus target, exp(z) − y.": "采用标准（log）联系函数的泊松负对数似然：对自然参数 z = log λ 的梯度是均值减目标，exp(z) − y。",
    "Product rule: the binary cross-entropy's gradient σ(z) − y scaled by the modulating factor (1 − p_t)^γ, plus the cross-entropy times the factor's derivative, γ(1 − p_t)^(γ−1)(1 − 2y)σ(z)σ(−z); all times α_t.": "乘积法则：二元交叉熵的梯度 σ(z) − y 乘以调制因子 (1 − p_t)^γ，加上交叉熵乘以该因子的导数 γ(1 − p_t)^(γ−1)(1 − 2y)σ(z)σ(−z)；整体再乘以 α_t。",
    "Quadratic within β of the target, linear outside: the residual over β, clipped to ±1.": "距目标 β 以内为二次，以外为线性：残差除以 β，截断到 ±1。",
    "Quadratic within δ of the target, linear outside: the residual clipped to ±δ.": "距目标 δ 以内为二次，以外为线性：残差截断到 ±δ。",
    "Smooth L1 (SmoothL1Loss): quadratic within beta, linear outside; beta=0 is L1.": "Smooth L1（SmoothL1Loss）：beta 以内为二次，以外为线性；beta=0 即 L1。",
    "Smooth L1: (z − y)²/(2β) where |z − y| < β, else |z − y| − β/2.": "Smooth L1：|z − y| < β 时为 (z − y)²/(2β)，否则为 |z − y| − β/2。",
    "Soft margin (logistic) loss log(1 + exp(−y z)) for labels y = ±1, as softplus(−y z).": "标签 y = ±1 的软间隔（logistic）损失 log(1 + exp(−y z))，写作 softplus(−y z)。",
    "Softmax cross-entropy with class-index or probability targets (CrossEntropyLoss).": "目标为类别下标或概率的 softmax 交叉熵（CrossEntropyLoss）。",
    "Squared error of the prediction z against the target y.": "预测 z 相对目标 y 的平方误差。",
    "The C × C block (Σₖ aₖ)(diag(p) − p pᵀ): the softmax's Jacobian, the covariance of the categorical distribution, scaled by the total target weight.": "C × C 的块 (Σₖ aₖ)(diag(p) − p pᵀ)：softmax 的 Jacobian，即类别分布的协方差，乘以目标的总权重。",
    "The Gaussian negative log-likelihood in its mean: the residual over the variance.": "高斯负对数似然对均值的导数：残差除以方差。",
    "The Gaussian negative log-likelihood with unit variance (up to the factor 2) in its canonical (identity) link: twice the residual.": "单位方差的高斯负对数似然（相差因子 2），采用标准（恒等）联系函数：残差的两倍。",
    "The derivative of the mean σ(z) is the Bernoulli variance σ(z)(1 − σ(z)), free of the target except through the pos_weight factor.": "均值 σ(z) 的导数是 Bernoulli 方差 σ(z)(1 − σ(z))，除了通过 pos_weight 因子外与目标无关。",
    "The derivative of the mean σ(z) is the Bernoulli variance σ(z)(1 − σ(z)), free of the target.": "均值 σ(z) 的导数是 Bernoulli 方差 σ(z)(1 − σ(z))，与目标无关。",
    "The derivative of |d| is sign(d) away from the kink.": "在不可导点以外，|d| 的导数是 sign(d)。",
    "The derivative of −y/(z + ε).": "−y/(z + ε) 的导数。",
    "The logistic loss of the margin y z: −y σ(−y z), the Bernoulli mean-minus-target written for labels ±1.": "间隔 y z 的 logistic 损失：−y σ(−y z)，即对标签 ±1 写出的 Bernoulli 均值减目标。",
    "The mirror image: +y while the margin is violated.": "镜像：间隔被违反时为 +y。",
    "The precision 1/σ², free of the input.": "精度 1/σ²，与输入无关。",
    "The sigmoid maps the logit z to the probability p = P(y = 1 | x).": "sigmoid 把 logit z 映射为概率 p = P(y = 1 | x)。",
    "The softmax maps the C logits z to class probabilities pₖ.": "softmax 把 C 个 logit z 映射为类别概率 pₖ。",
    "The variance of the Poisson distribution, its mean exp(z).": "泊松分布的方差，等于其均值 exp(z)。",
    "Evaluated as exp(z) rounded once from a double-double value.": "按 exp(z) 计算，由双倍双精度（double-double）值只舍入一次。",
    "With beta = 0, torch computes smooth_l1_loss as l1_loss: |z − y|.": "beta = 0 时，torch 把 smooth_l1_loss 按 l1_loss 计算：|z − y|。",
    "label_smoothing ε mixes the target with the uniform distribution over C classes.": "label_smoothing ε 把目标与 C 个类别上的均匀分布混合。",
    "nll_loss of log_softmax(z) is cross_entropy: the negative log-likelihood of the target class under p = softmax(z).": "log_softmax(z) 的 nll_loss 就是 cross_entropy：目标类别在 p = softmax(z) 下的负对数似然。",
    "reduction='batchmean' divides the sum by N, the size of the first dimension.": "reduction='batchmean' 把总和除以第一维的大小 N。",
    "reduction='mean' averages the per-element losses over all n elements.": "reduction='mean' 对全部 n 个元素的逐元素损失取平均。",
    "reduction='mean' averages the per-sample losses over the n samples.": "reduction='mean' 对 n 个样本的逐样本损失取平均。",
    "reduction='mean' divides by n, the number of samples (non-ignored ones, for class-index targets).": "reduction='mean' 除以样本数 n（对类别下标目标，只计未被忽略的样本）。",
    "reduction='mean' with class-index targets divides by the total weight Σₘ w(tₘ) of the non-ignored samples (tₘ is sample m's class); with probability targets, by the number of samples.": "对类别下标目标，reduction='mean' 除以未被忽略样本的总权重 Σₘ w(tₘ)（tₘ 是第 m 个样本的类别）；对概率目标则除以样本数。",
    "the target is a distribution, Σₖ yₖ = 1": "目标是一个分布，Σₖ yₖ = 1",
    "torchvision's sigmoid_focal_loss: α_t (1 − p_t)^γ times the binary cross-entropy of p = σ(z), with p_t = p y + (1 − p)(1 − y) and α_t = α y + (1 − α)(1 − y) (no α_t when α < 0); 1 − p_t is evaluated as y σ(−z) + (1 − y) σ(z).": "torchvision 的 sigmoid_focal_loss：α_t (1 − p_t)^γ 乘以 p = σ(z) 的二元交叉熵，其中 p_t = p y + (1 − p)(1 − y)，α_t = α y + (1 − α)(1 − y)（α < 0 时没有 α_t）；1 − p_t 按 y σ(−z) + (1 − y) σ(z) 计算。",
    "torchvision.ops.sigmoid_focal_loss: focal loss of logits (alpha, gamma).": "torchvision.ops.sigmoid_focal_loss：logit 的 focal 损失（alpha、gamma）。",
    "y² σ(y z) σ(−y z); for labels ±1 this is the Bernoulli variance.": "y² σ(y z) σ(−y z)；对标签 ±1 这就是 Bernoulli 方差。",
    "−y while the pair violates the margin, 0 once it is satisfied.": "这对样本违反间隔时为 −y，满足间隔后为 0。",
    # ---- 提升（boosting）损失（catalog_boosting.py）
    "exponential (log link)": "指数函数（log 联系函数）",
    "The log link: the margin z is log μ, so the mean is μ = e^z > 0.": "log 联系函数：原始得分（margin）z 就是 log μ，所以均值为 μ = e^z > 0。",
    "scikit-learn's convention: half the unit deviance, d(y, μ)/2, zero where μ = y; the boosting libraries differentiate the negative log-likelihood, which differs from it by a term free of z, so their gradients and Hessians are these.": "这是 scikit-learn 的约定：单位偏差的一半 d(y, μ)/2，在 μ = y 处为 0；提升（boosting）库对负对数似然求导，它与此式只相差一个与 z 无关的项，所以它们的梯度和 Hessian 就是这里的这些。",
    "Gamma half deviance with the log link (XGBoost reg:gamma, LightGBM gamma); no torch twin.": "采用 log 联系函数的 Gamma 半偏差（XGBoost reg:gamma、LightGBM gamma）；没有 torch 对应实现。",
    "Gamma half deviance log(μ/y) + y/μ − 1 with the log link μ = e^z (y > 0).": "Gamma 半偏差 log(μ/y) + y/μ − 1，采用 log 联系函数 μ = e^z（y > 0）。",
    "Mean minus target over the variance function V(μ) = μ², times dμ/dz = μ: (μ − y)/μ = 1 − y e^(−z), the form XGBoost's reg:gamma and LightGBM's gamma compute.": "均值减目标，除以方差函数 V(μ) = μ²，再乘以 dμ/dz = μ：(μ − y)/μ = 1 − y e^(−z)，即 XGBoost 的 reg:gamma 和 LightGBM 的 gamma 所计算的形式。",
    "y e^(−z) = y/μ, positive for y > 0.": "y e^(−z) = y/μ，y > 0 时为正。",
    "Evaluated as y·e^(−z) rounded once from a pair (xexp: 0 for y = 0).": "按 y·e^(−z) 计算，由一对浮点数（pair）只舍入一次（xexp：y = 0 时为 0）。",
    "Log-cosh loss log cosh(z − y); no torch twin.": "Log-cosh 损失 log cosh(z − y)；没有 torch 对应实现。",
    "Log-cosh loss log cosh(z − y), written r + softplus(−2r) − log 2 with r = z − y: no overflow of cosh for large |r|.": "Log-cosh 损失 log cosh(z − y)，写作 r + softplus(−2r) − log 2，其中 r = z − y：|r| 很大时 cosh 也不会溢出。",
    "Evaluated as log(1 + 2 sinh²(r/2)) (log1p; cosh r = 1 + 2 sinh²(r/2): ≈ r²/2 without cancellation) for |r| < 1 and r + softplus(−2r) − log 2 beyond, both in double-double from the exact r = z − y.": "|r| < 1 时按 log(1 + 2 sinh²(r/2)) 计算（log1p；cosh r = 1 + 2 sinh²(r/2)：约为 r²/2，没有相消），其余情形按 r + softplus(−2r) − log 2 计算，两者都从精确的 r = z − y 出发以双双精度求值。",
    "The derivative of log cosh r is tanh r: about r near 0, ±1 far away.": "log cosh r 的导数是 tanh r：在 0 附近约等于 r，远离 0 时趋于 ±1。",
    "Evaluated as tanh(z − y): no 2σ(2r) − 1 cancellation near r = 0.": "按 tanh(z − y) 计算：在 r = 0 附近没有 2σ(2r) − 1 的相消。",
    "sech² r = 1 − tanh² r.": "sech² r = 1 − tanh² r。",
    "Evaluated as 4σ(2r)σ(−2r): 1 − tanh² r would cancel to 0 where tanh r rounds to ±1.": "按 4σ(2r)σ(−2r) 计算：在 tanh r 被舍入为 ±1 的地方，1 − tanh² r 会相消为 0。",
    "Pseudo-Huber loss δ²(√(1 + ((z − y)/δ)²) − 1) (XGBoost reg:pseudohubererror); no torch twin.": "Pseudo-Huber 损失 δ²(√(1 + ((z − y)/δ)²) − 1)（XGBoost reg:pseudohubererror）；没有 torch 对应实现。",
    "Pseudo-Huber loss δ²(√(1 + ((z − y)/δ)²) − 1): quadratic near the target, linear with slope δ far from it, smooth everywhere (XGBoost's reg:pseudohubererror with huber_slope = δ).": "Pseudo-Huber 损失 δ²(√(1 + ((z − y)/δ)²) − 1)：在目标附近为二次，远离目标时为斜率为 δ 的线性，处处光滑（即 XGBoost 的 reg:pseudohubererror，取 huber_slope = δ）。",
    "√(1 + u²) − 1 is evaluated as u²/(1 + hypot(1, u)).": "√(1 + u²) − 1 按 u²/(1 + hypot(1, u)) 计算。",
    "The residual divided by √(1 + (r/δ)²): about r near the target, tending to ±δ far from it.": "残差除以 √(1 + (r/δ)²)：在目标附近约等于 r，远离目标时趋于 ±δ。",
    "Evaluated as r / hypot(1, r/δ): finite for every finite residual.": "按 r / hypot(1, r/δ) 计算：对每个有限的残差都是有限值。",
    "(1 + (r/δ)²)^(−3/2): 1 at the target, decaying like (δ/|r|)³.": "(1 + (r/δ)²)^(−3/2)：在目标处为 1，远离目标时按 (δ/|r|)³ 衰减。",
    "Evaluated as 1 / hypot(1, r/δ)³: the derived form's (1 + u²) − u² cancels.": "按 1 / hypot(1, r/δ)³ 计算：推导出的形式中 (1 + u²) − u² 会发生相消。",
    "Pinball (quantile) loss (XGBoost reg:quantileerror, LightGBM quantile); no torch twin.": "Pinball（分位数）损失（XGBoost reg:quantileerror、LightGBM quantile）；没有 torch 对应实现。",
    "Pinball (quantile) loss for the quantile τ ∈ (0, 1): τ (y − z) below the target, (1 − τ)(z − y) above it; scikit-learn's PinballLoss (no half), XGBoost's reg:quantileerror (quantile_alpha = τ), LightGBM's quantile (alpha = τ).": "分位数 τ ∈ (0, 1) 的 Pinball（分位数）损失：z 低于目标时为 τ (y − z)，高于目标时为 (1 − τ)(z − y)；即 scikit-learn 的 PinballLoss（不取一半）、XGBoost 的 reg:quantileerror（quantile_alpha = τ）、LightGBM 的 quantile（alpha = τ）。",
    "−τ below the target, 1 − τ above it.": "z 低于目标时为 −τ，高于目标时为 1 − τ。",
    "At z = y the one-sided derivatives are −τ (from the left) and 1 − τ (from the right); XGBoost (quantile_obj.cu: d = predt − label ≥ 0 gives 1 − α) and LightGBM (regression_objective.hpp: delta ≥ 0 gives 1 − α) take the right-hand value 1 − τ, as z ≥ y does here; scikit-learn's PinballLoss takes the left-hand −τ (y_true ≥ raw_prediction gives −τ, measured with 1.9).": "在 z = y 处，单侧导数为 −τ（左侧）和 1 − τ（右侧）；XGBoost（quantile_obj.cu：d = predt − label ≥ 0 时取 1 − α）和 LightGBM（regression_objective.hpp：delta ≥ 0 时取 1 − α）取右侧的值 1 − τ，与这里的 z ≥ y 一致；scikit-learn 的 PinballLoss 取左侧的 −τ（y_true ≥ raw_prediction 时为 −τ，在 1.9 版上实测）。",
    "Both are subgradients.": "两者都是次梯度。",
    "XGBoost, LightGBM and scikit-learn use the constant 1 as the Hessian instead (symloss.objective(..., library=...) does too).": "XGBoost、LightGBM 和 scikit-learn 则改用常数 1 作为 Hessian（symloss.objective(..., library=...) 也是如此）。",
    "Tweedie half deviance, log link, 1 < power < 2 (XGBoost reg:tweedie, LightGBM tweedie); no torch twin.": "Tweedie 半偏差，log 联系函数，1 < power < 2（XGBoost reg:tweedie、LightGBM tweedie）；没有 torch 对应实现。",
    "Tweedie half deviance with variance power ρ ∈ (1, 2) (compound Poisson-Gamma) and the log link μ = e^z.": "方差幂 ρ ∈ (1, 2)（复合泊松-Gamma 分布）、采用 log 联系函数 μ = e^z 的 Tweedie 半偏差。",
    "Mean minus target over the variance function V(μ) = μ^ρ, times dμ/dz = μ: (μ − y) μ^(1−ρ) = e^((2−ρ)z) − y e^((1−ρ)z), the form XGBoost's reg:tweedie and LightGBM's tweedie compute.": "均值减目标，除以方差函数 V(μ) = μ^ρ，再乘以 dμ/dz = μ：(μ − y) μ^(1−ρ) = e^((2−ρ)z) − y e^((1−ρ)z)，即 XGBoost 的 reg:tweedie 和 LightGBM 的 tweedie 所计算的形式。",
    "Evaluated as e^((2−ρ)z) − y e^((1−ρ)z) with y e^((1−ρ)z) as xexp: 0 for y = 0 where e^((1−ρ)z) overflows; the two terms cancel only near μ = y, where both are about y^(2−ρ).": "按 e^((2−ρ)z) − y e^((1−ρ)z) 计算，其中 y e^((1−ρ)z) 用 xexp 计算：y = 0 时即使 e^((1−ρ)z) 溢出，结果也为 0；两项只在 μ = y 附近相消，那里两者都约为 y^(2−ρ)。",
    "(2 − ρ) e^((2−ρ)z) + (ρ − 1) y e^((1−ρ)z): both terms ≥ 0 for y ≥ 0, so nothing cancels; y e^((1−ρ)z) is evaluated as xexp, 0 at y = 0 for every z.": "(2 − ρ) e^((2−ρ)z) + (ρ − 1) y e^((1−ρ)z)：y ≥ 0 时两项都 ≥ 0，所以不发生相消；y e^((1−ρ)z) 用 xexp 计算，y = 0 时对任何 z 都为 0。",
    "Evaluated as 1 − y e^(−z) in double-double: it cancels next to z = log y.": "以双倍双精度（double-double）计算 1 − y e^(−z)：它在 z = log y 附近相消。",
    # ---- the names a printed derivation uses (render.py, "where q = …")
    "the weight of y's class": "y 所属类别的权重",
    "the binary cross-entropy of σ(z)": "σ(z) 的二元交叉熵",
    "∂ℓ_BCE/∂z, by sympy.diff": "∂ℓ_BCE/∂z，由 sympy.diff 求得",
    "∂²ℓ_BCE/∂z², by sympy.diff": "∂²ℓ_BCE/∂z²，由 sympy.diff 求得",
    "q = 1 − p_t, the probability given to the wrong label": "q = 1 − p_t，模型给错误标签的概率",
    "∂q/∂z, by sympy.diff": "∂q/∂z，由 sympy.diff 求得",
    "∂²q/∂z², by sympy.diff": "∂²q/∂z²，由 sympy.diff 求得",
    "the margin of class k": "类别 k 的间隔",
}

#: 句子之间直接相连（中文句号后不加空格）。
SENTENCE_JOIN = ""

#: ``symloss check`` 的报告，逐行：(英文行的正则, 中文模板)；``{n}`` 是第 n 个分组（也会被翻译）。
LINES: list[tuple[str, str]] = [
    (r"(.+) against symloss's exact (.+)", "{0} 对照 symloss 的精确 {1}"),
    (r"torch's (\w+) \(written with torch operations\)", "torch 的 {0}（用 torch 运算写成）"),
    (r"agrees: all (\d+) cases, loss value and gradient, within (\S+) ulps",
     "一致：全部 {0} 个用例的损失值和梯度都在 {1} ulp 以内"),
    (r"(.+) disagrees with symloss's exact (.+) on the domain (\[.+\])",
     "{0} 与 symloss 的精确 {1} 在定义域 {2} 上不一致"),
    (r"(.+) disagrees with symloss's exact (.+)", "{0} 与 symloss 的精确 {1} 不一致"),
    (r"tolerance: (\S+) ulps of the terms combined, per dtype", "容差：各项合计 {0} ulp，按 dtype 分别计"),
    (r"\[(\w+)\] all (\d+) cases agree", "[{0}] 全部 {1} 个用例一致"),
    (r"\[(\w+)\] (\d+) of (\d+) cases disagree", "[{0}] {2} 个用例中有 {1} 个不一致"),
    (r"case ('.*'): (.+) raised (.+)", "用例 {0}：{1} 抛出了 {2}"),
    (r"(loss value|gradient): agrees", "{0}：一致"),
    (r"(loss value|gradient): (\d+) cases disagree, (\d+) of (\d+) elements",
     "{0}：{1} 个用例不一致，{3} 个元素中有 {2} 个"),
    (r"loss value", "损失值"),
    (r"gradient", "梯度"),
    (r"worst: case ('.*'), index (.*)", "最差：用例 {0}，下标 {1}"),
    (r"input (\S+), target (\S+)", "输入 {0}，目标 {1}"),
    (r"got (\S+), expected (\S+), error (\S+) ulps", "得到 {0}，应为 {1}，误差 {2} ulp"),
    (r"where: (.+)", "位置：{0}"),
    (r"inputs in (\[.*\])", "输入在 {0} 内"),
    (r"likely cause: (.+)", "可能原因：{0}"),
    (r"an extra constant factor (\S+) \(relative error (\S+)\); and the sign is flipped",
     "多了一个常数因子 {0}（相对误差 {1}）；而且符号反了"),
    (r"an extra constant factor (\S+) \(relative error (\S+)\)", "多了一个常数因子 {0}（相对误差 {1}）"),
    (r"sign flipped \(it is exactly −1 times the exact value\)", "符号反了（恰好是精确值的 −1 倍）"),
    (r"a missing 1/n: reduction='mean' is not divided by its denominator n \(n = (.+) in the "
     r"disagreeing cases\)", "缺少 1/n：reduction='mean' 没有除以它的分母 n（不一致的用例中 n = {0}）"),
    (r"divided by the mean's denominator n twice \(n = (.+)\)", "除以了两次均值的分母 n（n = {0}）"),
    (r"(\w+) not applied \(it matches symloss's result without (\w+)\)",
     "没有应用 {0}（与 symloss 不带 {1} 的结果一致）"),
    (r"the derivative of the (\w+), (.+), in place of (.+)", "用 {0} 的导数 {1} 代替了 {2}"),
    (r"(.+) multiplied again by the (\w+)'s derivative (.+) \(chain rule applied twice\)",
     "{0} 又乘了一次 {1} 的导数 {2}（链式法则用了两次）"),
    (r"the gradient goes to 0 beyond \|input\| ≈ (\S+): it agrees for every \|input\| < (\S+), and "
     r"beyond it is 0 at (\d+) of the (\d+) disagreeing elements where the exact gradient is not "
     r"-- a saturated intermediate, such as σ\(z\) rounded to 1 before its log or its derivative "
     r"is taken \(compute from the logit instead\)",
     "|input| ≈ {0} 之外梯度变成 0：对所有 |input| < {1} 都一致；在 {3} 个不一致的元素中，有 {2} "
     "个在精确梯度不为 0 的地方为 0 —— 这是中间量饱和，例如 σ(z) 在取 log 或求导之前就被舍入成 1"
     "（应改为直接从 logit 计算）"),
    (r"the forward value is wrong while the gradient is right: the forward computes another "
     r"function \(a dropped or changed term\)",
     "前向的值错了而梯度是对的：前向计算的是另一个函数（漏掉或改动了一项）"),
    (r"stability map \(where the gradient is exact\):", "稳定性图（梯度精确的范围）："),
    (r"(\w+) \[(\w+)\]: the gradient agrees over the whole scanned range (\[.*\])",
     "{0} [{1}]：在整个扫描范围 {2} 内梯度都一致"),
    (r"(\w+) \[(\w+)\]: the gradient agrees for inputs in (\[.*\]) \(scanned (\[.*\])\)",
     "{0} [{1}]：输入在 {2} 内梯度一致（扫描范围 {3}）"),
    (r"(lower|upper) boundary, (.+): agrees at (\S+), not at (\S+) \(gradient (\S+), exact (\S+)\)",
     "{0}边界，{1}：在 {2} 处一致，在 {3} 处不一致（梯度 {4}，精确值 {5}）"),
    (r"lower", "下"),
    (r"upper", "上"),
]

# ---- 逐行损失（symloss.row_losses）：cosine_embedding_loss、triplet_margin_loss、multilabel_margin_loss
SENTENCES.update({
    "aten's EPSILON, the float 1e-12, in double.": "aten 的 EPSILON：单精度浮点数 1e-12，以双精度表示。",
    "The squared norm of a, plus ε.": "a 的范数平方，加上 ε。",
    "The squared norm of b, plus ε.": "b 的范数平方，加上 ε。",
    "The cosine of a and b.": "a 与 b 的余弦。",
    "Cosine embedding loss of a pair of rows a, b with y = ±1: 1 − c for y = 1 and max(0, c − margin) "
    "for y = −1, c = a·b / √((|a|² + ε)(|b|² + ε)) with aten's ε = 1e-12 (a float) added to each "
    "squared norm; written with (1 ± y)/2.":
        "一对行向量 a、b 的余弦嵌入损失，y = ±1：y = 1 时为 1 − c，y = −1 时为 max(0, c − margin)；"
        "c = a·b / √((|a|² + ε)(|b|² + ε))，每个范数平方都加上 aten 的 ε = 1e-12（单精度）；用 (1 ± y)/2 写成一个式子。",
    "reduction='mean' averages the per-row losses over the N rows.":
        "reduction='mean' 对 N 行的逐行损失取平均。",
    "The derivative of the cosine, ∂c/∂aᵢ = bᵢ/√(s_a s_b) − c aᵢ/s_a (the part of b orthogonal to a, "
    "over the norms), times −1 for a similar pair (y = 1) and times 1[c − margin > 0] for a "
    "dissimilar one (y = −1).":
        "余弦的导数 ∂c/∂aᵢ = bᵢ/√(s_a s_b) − c aᵢ/s_a（b 中与 a 正交的部分，除以范数），"
        "相似的一对（y = 1）乘以 −1，不相似的一对（y = −1）乘以 1[c − margin > 0]。",
    "The mirror image: ∂c/∂bᵢ = aᵢ/√(s_a s_b) − c bᵢ/s_b, times the same factor.":
        "镜像：∂c/∂bᵢ = aᵢ/√(s_a s_b) − c bᵢ/s_b，乘以同一个因子。",
    "A dissimilar pair with c = margin: the derivative jumps from 0 (c < margin) to ∂c/∂aᵢ "
    "(c > margin); any value between is a subgradient.":
        "c = margin 的不相似的一对：导数从 0（c < margin）跳到 ∂c/∂aᵢ（c > margin）；两者之间的任何值都是次梯度。",
    "symloss counts the hinge as inactive (1[u > 0]), 0, as torch 2.14's clamp_min does; torch 2.13 "
    "passes the gradient (the other side).":
        "symloss 把 hinge 算作未激活（1[u > 0]），取 0，与 torch 2.14 的 clamp_min 相同；torch 2.13 让梯度通过（另一侧）。",
    "The Hessian of the cosine, −(aᵢbⱼ + aⱼbᵢ)/(s_a √(s_a s_b)) + 3c aᵢaⱼ/s_a² − c δᵢⱼ/s_a, times "
    "the same factor (the step's Dirac delta at the kink dropped).":
        "余弦的 Hessian，−(aᵢbⱼ + aⱼbᵢ)/(s_a √(s_a s_b)) + 3c aᵢaⱼ/s_a² − c δᵢⱼ/s_a，乘以同一个因子"
        "（阶跃函数在不可导点处的Dirac δ 已舍去）。",
    "Cosine embedding loss of row pairs with y = ±1 (CosineEmbeddingLoss); gradients for both inputs.":
        "行向量对的余弦嵌入损失，y = ±1（CosineEmbeddingLoss）；两个输入的梯度都给出。",
    "Multi-label margin loss: (1/C) Σ over target classes l and non-target classes k of "
    "max(0, 1 − x_l + x_k).":
        "多标签间隔损失：对目标类 l 与非目标类 k 求和 (1/C) Σ max(0, 1 − x_l + x_k)。",
    "yₖ counts class k in the row's target list (the class indices before the first −1; one listed "
    "twice counts twice, as in torch's kernel), so 1 − 1[yₖ > 0] marks a class that is not a target.":
        "yₖ 是类 k 在该行目标列表中出现的次数（第一个 −1 之前的类下标；列出两次就计两次，与 torch 的内核相同），"
        "因此 1 − 1[yₖ > 0] 标出不是目标的类。",
    "Each violated pair (target class l, other class k, 1 − x_l + x_k > 0) pushes x_k up and x_l "
    "down by 1/C: a class that is not a target gains the count of targets whose margin it violates, "
    "a target loses the number of classes violating it.":
        "每个违反间隔的对（目标类 l、其他类 k，1 − x_l + x_k > 0）把 x_k 推高、把 x_l 压低 1/C："
        "非目标类得到它所违反的目标个数，目标类失去违反它的类的个数。",
    "At a kink (1 − x_l + x_k = 0) torch's kernel counts the pair as inactive (z > 0), as the step "
    "1[u > 0] does.":
        "在不可导点（1 − x_l + x_k = 0）torch 的内核把这一对算作未激活（z > 0），与阶跃函数 1[u > 0] 相同。",
    "Piecewise linear: 0 away from the kinks.": "分段线性：不可导点之外为 0。",
    "torch has no double backward for multilabel_margin_loss.":
        "torch 的 multilabel_margin_loss 没有二次 backward。",
    "Multi-label hinge loss over target-class lists padded with -1 (MultiLabelMarginLoss).":
        "以 -1 补齐的目标类列表上的多标签 hinge 损失（MultiLabelMarginLoss）。",
    "The anchor's distance to the positive, torch's pairwise_distance.":
        "锚点到正样本的距离，即 torch 的 pairwise_distance。",
    "The anchor's distance to the negative.": "锚点到负样本的距离。",
    "The positive's distance to the negative.": "正样本到负样本的距离。",
    "Triplet margin loss max(0, margin + d(a, p) − d(a, n)) with the p-norm distance d(x, y) = "
    "|x − y + ε|_p of torch's pairwise_distance.":
        "三元组间隔损失 max(0, margin + d(a, p) − d(a, n))，距离为 torch 的 pairwise_distance 的 p 范数距离 "
        "d(x, y) = |x − y + ε|_p。",
    "Triplet margin loss max(0, margin + d(a, p) − d(a, n)) with the p-norm distance d(x, y) = "
    "|x − y + ε|_p of torch's pairwise_distance and, with swap, d(a, n) replaced by "
    "min(d(a, n), d(p, n)).":
        "三元组间隔损失 max(0, margin + d(a, p) − d(a, n))，距离为 torch 的 pairwise_distance 的 p 范数距离 "
        "d(x, y) = |x − y + ε|_p；swap 时 d(a, n) 换成 min(d(a, n), d(p, n))。",
    "While the margin is violated, the gradient of the distance to the positive minus that to the "
    "negative; ∂|u|_p/∂uᵢ = sign(uᵢ)|uᵢ|^(p−1)/|u|_p^(p−1).":
        "间隔被违反时，为到正样本距离的梯度减去到负样本距离的梯度；∂|u|_p/∂uᵢ = sign(uᵢ)|uᵢ|^(p−1)/|u|_p^(p−1)。",
    "While the margin is violated, the gradient of the distance to the positive minus that to the "
    "negative; ∂|u|_p/∂uᵢ = sign(uᵢ)|uᵢ|^(p−1)/|u|_p^(p−1); with swap the negative distance is the "
    "smaller of d_- and d_s, and its derivative, the Heaviside step H(d_s − d_-), picks the smaller "
    "one (H(0) = 1/2: torch's minimum splits a tie evenly).":
        "间隔被违反时，为到正样本距离的梯度减去到负样本距离的梯度；∂|u|_p/∂uᵢ = sign(uᵢ)|uᵢ|^(p−1)/|u|_p^(p−1)；"
        "swap 时负样本距离取 d_- 与 d_s 中较小者，其导数即 Heaviside 阶跃 H(d_s − d_-)，选出较小者"
        "（H(0) = 1/2：torch 的 minimum 在相等时平分梯度）。",
    "Minus the distance gradient to the positive.": "到正样本距离的梯度取负。",
    "The distance gradient to the negative, with a plus sign.": "到负样本距离的梯度，取正号。",
    "Minus the distance gradient to the positive, and the swap distance's where it is the smaller.":
        "到正样本距离的梯度取负；在 swap 距离较小处，swap 距离的梯度也取负计入。",
    "The distance gradient to the negative, with a plus sign, and the swap distance's where it is "
    "the smaller.":
        "到负样本距离的梯度，取正号；在 swap 距离较小处则取 swap 距离的梯度（同样取正号）。",
    "At margin + d_+ − d_- = 0 the derivative jumps from 0 (the margin is met) to the distance "
    "gradients (it is violated); any value between is a subgradient.":
        "在 margin + d_+ − d_- = 0 处，导数从 0（满足间隔）跳到距离的梯度（违反间隔）；两者之间的任何值都是次梯度。",
    "While the margin is violated, the Hessians of the distances, (δᵢⱼ − uᵢuⱼ/d²)/d for p = 2 "
    "(Dirac deltas at the kinks dropped).":
        "间隔被违反时，为各距离的 Hessian，p = 2 时为 (δᵢⱼ − uᵢuⱼ/d²)/d（不可导点处的Dirac δ 已舍去）。",
    "While the margin is violated, the Hessians of the distances, 0 almost everywhere for p = 1 "
    "(Dirac deltas at the kinks dropped).":
        "间隔被违反时，为各距离的 Hessian，p = 1 时几乎处处为 0（不可导点处的Dirac δ 已舍去）。",
    "Triplet margin loss of anchor, positive, negative rows (TripletMarginLoss): p-norm, eps, swap; "
    "gradients for all three.":
        "锚点、正样本、负样本三行的三元组间隔损失（TripletMarginLoss）：p 范数、eps、swap；三个输入的梯度都给出。",
})

# ---- 逐行损失的数值计算形式（symloss.row_losses 的 stable_loss / stable_gradient）
SENTENCES.update({
    "1 − c = |A − B|²/2 + ε/(2s_a) + ε/(2s_b) with A = a/√s_a, B = b/√s_b (a sum of terms ≥ 0; "
    "ε/s is what is left of 1 − c for equal rows), Aᵢ − Bᵢ = (aᵢ − bᵢ − bᵢq)/√s_a, "
    "q = √s_a/√s_b − 1 = Σₖ(aₖ − bₖ)(aₖ + bₖ)/(√s_b(√s_a + √s_b)).":
        "1 − c = |A − B|²/2 + ε/(2s_a) + ε/(2s_b)，其中 A = a/√s_a，B = b/√s_b（各项都 ≥ 0；"
        "两行相等时 1 − c 只剩 ε/s），Aᵢ − Bᵢ = (aᵢ − bᵢ − bᵢq)/√s_a，"
        "q = √s_a/√s_b − 1 = Σₖ(aₖ − bₖ)(aₖ + bₖ)/(√s_b(√s_a + √s_b))。",
    "∂c/∂aᵢ = (Bᵢ − c Aᵢ)/√s_a written as (Aᵢ(1 − c) − (Aᵢ − Bᵢ))/√s_a for c ≥ 0 and "
    "((Aᵢ + Bᵢ) − Aᵢ(1 + c))/√s_a for c < 0, with 1 − c, 1 + c, Aᵢ − Bᵢ and Aᵢ + Bᵢ as in the "
    "loss (1 + c = |A + B|²/2 + ε/(2s_a) + ε/(2s_b)): no cancellation of nearly parallel or "
    "antiparallel rows.":
        "∂c/∂aᵢ = (Bᵢ − c Aᵢ)/√s_a：c ≥ 0 时写成 (Aᵢ(1 − c) − (Aᵢ − Bᵢ))/√s_a，c < 0 时写成 "
        "((Aᵢ + Bᵢ) − Aᵢ(1 + c))/√s_a，其中 1 − c、1 + c、Aᵢ − Bᵢ 与 Aᵢ + Bᵢ 按损失中的方式计算"
        "（1 + c = |A + B|²/2 + ε/(2s_a) + ε/(2s_b)）：几乎平行或反平行的两行不会相消。",
    "d_+ − d_- = (d_+² − d_-²)/(d_+ + d_-) with d_+² − d_-² = Σₖ (nₖ − pₖ)(uₖ + wₖ) "
    "(uₖ = aₖ − pₖ + ε, wₖ = aₖ − nₖ + ε): no difference of two nearly equal distances next to "
    "the kink or where ε dominates both; where d_+² − d_-² = 0 (both distances 0 at a = p = n, "
    "ε = 0) d_+ − d_- itself, 0.":
        "d_+ − d_- = (d_+² − d_-²)/(d_+ + d_-)，其中 d_+² − d_-² = Σₖ (nₖ − pₖ)(uₖ + wₖ)"
        "（uₖ = aₖ − pₖ + ε，wₖ = aₖ − nₖ + ε）：在不可导点附近、或 ε 在两个距离中占主导时，"
        "都不必把两个几乎相等的距离相减；d_+² − d_-² = 0 时（ε = 0 且 a = p = n，两个距离都为 0）"
        "直接取 d_+ − d_-，即 0。",
    "uᵢ/d_+ − wᵢ/d_- = (nᵢ − pᵢ)/d_+ − wᵢ (d_+ − d_-)/(d_+ d_-), with d_+ − d_- as in the loss "
    "(also in the step): the two unit vectors do not cancel where the rows are close to each "
    "other.":
        "uᵢ/d_+ − wᵢ/d_- = (nᵢ − pᵢ)/d_+ − wᵢ (d_+ − d_-)/(d_+ d_-)，d_+ − d_- 按损失中的方式计算"
        "（阶跃函数中也是）：各行彼此接近时，两个单位向量不会相消。",
    "d_+ − d_- summed per feature, Σₖ(|uₖ| − |wₖ|): no difference of two large nearly equal sums "
    "next to the kink.":
        "d_+ − d_- 按特征逐项求和，Σₖ(|uₖ| − |wₖ|)：在不可导点附近不必把两个很大且几乎相等的和相减。",
})

SENTENCES.update({
    "The same two terms in double-double: e^((1−ρ)z) of a product (1−ρ)z rounded in float64 is off by that rounding times |(1−ρ)z|, hundreds of ulps where |z| is hundreds.": "同样的两项以双双精度计算：若乘积 (1−ρ)z 先按 float64 舍入，e^((1−ρ)z) 的误差是该舍入误差乘以 |(1−ρ)z|，在 |z| 为数百时达到数百 ulp。",
    "Evaluated as −(1 − ε) Σₖ wₖyₖ log pₖ − (ε/C) Σₖ wₖ log pₖ: the factor 1 − ε is not distributed over a class index's term.": "按 −(1 − ε) Σₖ wₖyₖ log pₖ − (ε/C) Σₖ wₖ log pₖ 计算：因子 1 − ε 不分配到类别索引的那一项上。",
})
