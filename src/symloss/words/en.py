"""English: every title and sentence symloss prints, by key (see :mod:`symloss.words`)."""

from __future__ import annotations

WORDS: dict[str, str] = {
    # ---- step titles (derive.py)
    "title.link": "Link",
    "title.definition": "Definition",
    "title.per_element_loss": "Per-element loss",
    "title.reduction": "Reduction",
    "title.derivative": "Derivative",
    "title.canonical": "Canonical form",
    "title.evaluated": "Evaluated as",
    "title.chain_rule": "Chain rule",
    "title.outer": "Outer factor",
    "title.inner": "Inner factor",
    "title.product": "Product",
    "title.gradient": "Gradient",
    "title.reduced_gradient": "Reduced gradient",
    "title.wrt": "Derivative with respect to {name}",
    "title.kink": "Kink",
    "title.second_derivative": "Second derivative",
    "title.closed_form": "Closed form",
    "title.hvp": "Hessian-vector product",
    # ---- step reasons (derive.py)
    "why.reduction_sum": "reduction='sum' adds the per-element losses.",
    "why.reduction_none": "reduction='none' keeps one loss per element.",
    "why.derivative": "sympy.diff of the per-element loss, then simplified.",
    "why.assuming": "{why} Assuming {facts}.",
    "why.kernel_form": "The form the NumPy kernel evaluates.",
    "why.chain_rule_class": "ℓ depends on zᵢ through every pₖ.",
    "why.chain_rule": "ℓ depends on z through p.",
    "why.outer": "sympy.diff of the loss with respect to the prediction.",
    "why.inner": "The derivative of the {link}, which each primitive carries (fdiff).",
    "why.product": (
        "Multiply the factors, cancel each term against the inner factor, and simplify; "
        "equal to sympy.diff of ℓ in z directly."
    ),
    "why.gradient_none": (
        "With reduction='none' each element's gradient is its own (backward with ones)."
    ),
    "why.reduced_mean": (
        "Each ℓₘ depends only on its own input, so the reduced gradient is the per-element "
        "gradient divided by the mean's denominator."
    ),
    "why.reduced_sum": (
        "Each ℓₘ depends only on its own input, so the reduced gradient is the per-element "
        "gradient."
    ),
    "why.wrt": "sympy.diff of the per-element loss in {name}, simplified. {why}",
    "why.first_derivative": "The first derivative, derived by sympy.diff and simplified (order 1).",
    "why.second": "sympy.diff of the gradient, then simplified.",
    "why.second_dirac": (
        "sympy.diff of the gradient; the Dirac delta at the kink is dropped (the derivative "
        "almost everywhere, which is what autograd's double backward returns), then simplified."
    ),
    "why.second_class": (
        "sympy.diff of the gradient with respect to a second logit {z2}, j a second class index, "
        "then simplified."
    ),
    "why.second_class_dirac": (
        "sympy.diff of the gradient with respect to a second logit {z2}, j a second class index; "
        "the Dirac delta at the kink is dropped (the derivative almost everywhere, which is what "
        "autograd's double backward returns), then simplified."
    ),
    "why.no_closed_form": (
        "No closed form is declared for this Hessian, so none is proved; the derived form above "
        "is the result."
    ),
    "why.hvp_class_mean": (
        "The Hessian-vector product contracts the second index with a direction v; each sample's "
        "block is its own, so the reduced loss's HVP is this per sample, divided by the mean's "
        "denominator."
    ),
    "why.hvp_class_sum": (
        "The Hessian-vector product contracts the second index with a direction v; each sample's "
        "block is its own, so the reduced loss's HVP is this per sample."
    ),
    "why.hvp_class_none": (
        "The Hessian-vector product contracts the second index with a direction v; each sample's "
        "block is its own, so the reduced loss's HVP is this per sample (reduction='none': the "
        "HVP of the sum, i.e. backward with ones)."
    ),
    "why.hvp_mean": (
        "Each element's loss depends only on its own input, so the Hessian of the reduced loss "
        "is diagonal and its product with a direction v is elementwise, divided by the mean's "
        "denominator."
    ),
    "why.hvp_sum": (
        "Each element's loss depends only on its own input, so the Hessian of the reduced loss "
        "is diagonal and its product with a direction v is elementwise."
    ),
    "why.hvp_none": (
        "Each element's loss depends only on its own input, so the Hessian of the reduced loss "
        "is diagonal and its product with a direction v is elementwise (reduction='none': the "
        "HVP of the sum, i.e. backward with ones)."
    ),
    # ---- the renderers (render.py)
    "status.definition": "definition",
    "status.checked": "checked by SymPy",
    "status.not_proved": "NOT PROVED",
    "verdict.proved": "proved",
    "verdict.not_proved": "NOT PROVED",
    "verdict.no_closed_form": "derived; no closed form declared, so NOT PROVED",
    "result": "Result ({verdict} by SymPy):",
    "second_derivative": "second derivative",
    "gradient": "gradient",
    "heading.second_derivative": "{title}: second derivative",
    "document.result": "The {what} is {verdict} equal to its closed form:",
    "colon": ": ",
    "where": "where",
    # ---- relations (relations.py)
    "relation.title": "{left} and {right}",
    "relation.proved": "proved: SymPy reduced every difference to 0",
    "relation.not_proved": "NOT PROVED: SymPy did not reduce every difference to 0",
    "relation.verdict": "Relation ({verdict}):",
    "relation.unknown": (
        "no relation between {a} and {b} is known; the relations: {known}"
    ),
    "relation.options": "{slug} takes no options, got {given}",
    "title.declared": "Declared",
    "title.substitute": "Substitute",
    "title.equal": "Equal",
    "title.gradients": "Gradients",
    "title.two_classes": "Two classes",
    "title.softmax_is_sigmoid": "The sigmoid is the two-class softmax",
    "title.entropy": "Entropy",
    "title.kl": "KL divergence",
    "title.labels": "Labels ±1",
    "why.declared": "The per-element loss of {name}, as its declaration writes it.",
    "why.declared_in": "The per-element loss of {name} written in its prediction {var}, as declared.",
    "why.equal": "The difference reduces to 0 (SymPy).",
    "why.equal_clamp": (
        "The difference reduces to 0 (SymPy), where torch's clamp of each log at −100 is "
        "inactive, i.e. for log p > −100."
    ),
    "why.gradient_equal": "sympy.diff of both sides in {var}; the difference reduces to 0.",
    # ---- worked examples (example.py)
    "example.inputs": "The numbers",
    "example.inputs_why": "The arrays of this example; every number below is computed by symloss.",
    # ---- symloss list
    "list.losses": "losses:",
    "list.aliases": "aliases:",
    "list.relations": "relations (symloss relate A B):",
    # ---- relations: the reasons and statements (relations.py)
    "why.substitute_sigmoid": "Put the sigmoid's probability p = σ(z) into BCE.",
    "why.substitute_log_softmax": "Put the log-probabilities x = log_softmax(z) into nll_loss.",
    "why.two_classes": (
        "Two classes: the target (1 − y, y) against the prediction (1 − p, p), as the notebook "
        "compares (yᵢ, 1 − yᵢ) with its prediction."
    ),
    "why.softmax_is_sigmoid": (
        "With C = 2, the softmax of (z₁, z₂) is the sigmoid of the difference of the logits."
    ),
    "why.ce_two_classes": (
        "Softmax cross-entropy with C = 2 is BCE-with-logits of z₂ − z₁ against y₂, for a "
        "target distribution (y₁ = 1 − y₂); log σ = −softplus(−·)."
    ),
    "why.ce_two_gradients": (
        "sympy.diff of the two-class cross-entropy: BCE-with-logits' gradient σ(z₂ − z₁) − y₂ "
        "at z₂ − z₁, with the sign of z₂ − z₁ in this logit."
    ),
    "why.entropy": "The entropy of the target, the cross-entropy of y with itself (0·log 0 = 0).",
    "why.kl": (
        "kl_div of the log-probabilities log_softmax(z) against y, summed over the classes "
        "(0·log 0 = 0)."
    ),
    "why.ce_entropy_kl": "Cross-entropy is the target's entropy plus KL(y‖p); the difference reduces to 0.",
    "why.entropy_free": "The entropy does not depend on the logits.",
    "why.kl_gradient": (
        "So the gradients of cross_entropy and of kl_div through log_softmax agree, for a "
        "target distribution (Σₖ yₖ = 1)."
    ),
    "why.soft_margin": (
        "soft_margin_loss is BCE-with-logits of the margin y z against the label 1."
    ),
    "why.soft_margin_labels": (
        "With the label y = {value}, soft_margin_loss is BCE-with-logits of z against "
        "(1 + y)/2 ∈ {{0, 1}}."
    ),
    "why.soft_margin_gradient": (
        "sympy.diff of both sides in z: the chain rule brings the factor y."
    ),
    "why.focal": (
        "With γ = 0 the modulating factor (1 − p_t)^γ is 1: the focal loss is BCE-with-logits "
        "weighted by α_t = α y + (1 − α)(1 − y)."
    ),
    "why.multilabel": (
        "multilabel_soft_margin_loss is the mean over the C classes of BCE-with-logits of each "
        "class's logit."
    ),
    "why.multilabel_gradient": (
        "sympy.diff in xᵢ: only class i's term depends on xᵢ, so the gradient is "
        "BCE-with-logits' gradient divided by C."
    ),
    "relation.bce_with_logits-bce": (
        "BCEWithLogitsLoss is BCELoss of the sigmoid: BCE-with-logits(z, y) = BCE(σ(z), y)."
    ),
    "relation.bce-ce": (
        "Binary cross-entropy is the cross-entropy H of two outcomes, and softmax cross-entropy "
        "with C = 2 is BCE-with-logits of z₂ − z₁: the sigmoid is the two-class softmax."
    ),
    "relation.ce-kl_div": (
        "Cross-entropy is the target's entropy plus KL(y‖p): CE = H(y) + KL(y‖p), so their "
        "gradients in the logits agree."
    ),
    "relation.nll_loss-ce": "cross_entropy is nll_loss of log_softmax: CE(z, y) = NLL(log_softmax(z), y).",
    "relation.soft_margin-bce_with_logits": (
        "soft_margin_loss(z, y) is BCE-with-logits(y z, 1); for labels ±1 it is BCE-with-logits "
        "of z against (1 + y)/2."
    ),
    "relation.focal-bce_with_logits": (
        "sigmoid_focal_loss with γ = 0 is BCE-with-logits weighted by α_t."
    ),
    "relation.multilabel-bce_with_logits": (
        "multilabel_soft_margin_loss is the class-mean of BCE-with-logits."
    ),
}

#: How sentences are joined (English: with a space).
SENTENCE_JOIN = " "
