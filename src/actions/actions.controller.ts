import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireScope } from '../auth/auth.decorators';
import { SCOPES } from '../auth/scopes';
import { ApiProblemResponses } from '../common/problem-details/api-problem-responses.decorator';
import { ActionListResponseDto } from './dto/action-list-response.dto';
import { ActionsRegistry } from './actions.registry';

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
    description: 'Each action with the JSON schema its params must match.',
  })
  @ApiOkResponse({ type: ActionListResponseDto })
  @ApiProblemResponses(401, 403)
  list(): ActionListResponseDto {
    return {
      items: this.registry
        .list()
        .map((a) => ({ name: a.name, description: a.description, params_schema: a.paramsSchema })),
    };
  }
}
