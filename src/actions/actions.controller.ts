import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScope } from '../auth/auth.decorators';
import { SCOPES } from '../auth/scopes';
import { ApiProblemResponses, forbidden } from '../common/problem-details/api-problem-responses.decorator';
import { ActionListResponseDto } from './dto/action-list-response.dto';
import { ActionsRegistry } from './actions.registry';
import { HTTP_PARAMS_SCHEMA } from './http.action';

const ACTIONS_EXAMPLE = {
  items: [
    {
      name: 'noop',
      description: 'Does nothing and succeeds at once (dry runs, benchmarks).',
      params_schema: { type: 'object', additionalProperties: false, properties: {} },
    },
    {
      name: 'http',
      description: 'Sends one HTTP request per target to a URL template; credential headers by reference.',
      params_schema: HTTP_PARAMS_SCHEMA,
    },
  ],
};

@ApiTags('bulk-jobs')
@ApiBearerAuth()
@Controller('api/actions/bulk/actions')
export class ActionsController {
  constructor(private readonly registry: ActionsRegistry) {}

  @Get()
  @RequireScope(SCOPES.read)
  @ApiOperation({
    operationId: 'listBulkActions',
    summary: 'List the registered actions',
    description:
      'Each action with the JSON schema its params must match. Delivery is at least once: an item may run more ' +
      'than once (a retry, or a worker that crashed or lost its lease), and every attempt of an item carries the ' +
      'same idempotency key, `<job id>:<seq>`, which the `http` action sends as the `Idempotency-Key` header.',
  })
  @ApiOkResponse({ type: ActionListResponseDto, example: ACTIONS_EXAMPLE })
  @ApiProblemResponses(401, forbidden(SCOPES.read))
  list(): ActionListResponseDto {
    return {
      items: this.registry
        .list()
        .map((a) => ({ name: a.name, description: a.description, params_schema: a.paramsSchema })),
    };
  }
}
