"""The file MLflow loads a postergenre pyfunc model from ("models from code": no pickled object).

See serving.py: `log_pyfunc` logs this file with the model folder and the package's source.
"""

import mlflow

from postergenre.serving import PosterGenreModel

mlflow.models.set_model(PosterGenreModel())
