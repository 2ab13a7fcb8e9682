"""digits_data - the digits dataset split the same way for the model
(digits.py) and for clients that measure its accuracy."""
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def dataset(test_fraction=0.2):
    """(x_train, y_train, x_test, y_test): Debian's bundled 8x8 digits,
    a fixed stratified split (the held-out part is never trained on)."""
    d = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(d.data, d.target, test_size=test_fraction,
                                                        random_state=0, stratify=d.target)
    return x_train, y_train, x_test, y_test
